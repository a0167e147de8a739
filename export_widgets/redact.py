"""Keep secrets out of every output: signed URLs, AK/SK, tokens.

Two layers, because either alone misses something:

* **Patterns** catch what looks like a secret whatever its source: a URL's query string (pre-signed OBS/BOS
  download URLs carry ``?authorization=bce-auth-v1/...``), ``Authorization`` header values of both signing schemes,
  and ``X-Auth-Token``/``X-Security-Token`` values.
* **Known values**: clients register the credentials they were given (:func:`register_secret`), so an AK that a
  server echoes back in an error message is masked too.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "SecretLogFilter", "install_log_filter", "one_line", "redact_text", "redact_url",
           "register_secret"]

MASK = "***"

# Any scheme (https, obs, s3, bos, ...): signed object URLs are bearer credentials whatever their scheme.
_SCHEME = r"[a-z][a-z0-9+.\-]*://"
# URL user info (``https://user:pass@host``): mask it, keep the host.
_USERINFO = re.compile(rf"""(?P<scheme>{_SCHEME})[^\s/?#@"'<>]+@""", re.IGNORECASE)
# A URL with a query or fragment: keep scheme/host/path, drop the rest.
_URL_WITH_QUERY = re.compile(rf"""(?P<base>{_SCHEME}[^\s?#"'<>]+)[?#][^\s"'<>]*""", re.IGNORECASE)
_SECRET_PATTERNS = (
    re.compile(r"(bce-auth-v1/)[^\s\"'<>,]+", re.IGNORECASE),
    re.compile(r"(SDK-HMAC-SHA256\s+)[^\"'<>\n]+", re.IGNORECASE),
    re.compile(r"((?:authorization|x-auth-token|x-security-token|x-subject-token)\s*[:=]\s*)[^\s\"'<>&,]+",
               re.IGNORECASE),
    # Bare query pairs of signed URLs (OBS, S3, BOS, OSS), e.g. a path logged without its scheme and host.
    re.compile(r"((?<![A-Za-z0-9_-])(?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|"
               r"accesskeyid|ossaccesskeyid|x-obs-security-token|security-?token|x-bce-security-token)=)"
               r"[^\s\"'<>&,]+", re.IGNORECASE),
)
# Every pattern above needs one of these: text without them skips the regular expressions.
_MAY_MATCH = re.compile(r"[=:]|bce-auth-v1/|sdk-hmac-sha256", re.IGNORECASE)
# Shorter strings would mask ordinary words; real AK/SK/tokens are 16+ characters.
_MIN_SECRET_LENGTH = 8

_known_secrets: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a credential so :func:`redact_text` masks it wherever it appears."""
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _known_lock:
            _known_secrets.add(value)


def redact_url(url: str | None) -> str | None:
    """Return ``url`` without user info, query string and fragment (``None`` stays ``None``).

    >>> redact_url("https://b.bcebos.com/x.zip?authorization=bce-auth-v1%2Fak%2F...")
    'https://b.bcebos.com/x.zip?***'
    """
    if not url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port  # raises for a port that is not a number in 0..65535
    except ValueError:
        return MASK
    netloc = parts.hostname or ""
    if port:
        netloc += f":{port}"
    hidden = "?" + MASK if (parts.query or parts.fragment) else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + hidden


def redact_text(text: str) -> str:
    """Mask signed URL queries, authorization values and registered credentials in free text."""
    if not text:
        return text
    if _MAY_MATCH.search(text):
        text = _USERINFO.sub(lambda m: m.group("scheme") + MASK + "@", text)
        text = _URL_WITH_QUERY.sub(lambda m: m.group("base") + "?" + MASK, text)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
    with _known_lock:
        secrets = sorted(_known_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def one_line(error: BaseException) -> str:
    """An exception as one redacted line (its class name when it has no message)."""
    return " ".join(redact_text(str(error)).split()) or type(error).__name__


class SecretLogFilter(logging.Filter):
    """Masks signed queries, tokens and registered credentials in records of the HTTP libraries.

    urllib3 logs every request line at DEBUG (``"GET /path?query HTTP/1.1" 200``) and requests/urllib3 log
    redirect targets: a signed URL in those lines would be a usable credential in a log file.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a record that cannot be formatted: keep only its template
            message = str(record.msg)
        cleaned = redact_text(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


#: Loggers of the HTTP stack that write URLs (a filter acts only on records logged on its own logger).
HTTP_LOGGERS = ("urllib3", "urllib3.connectionpool", "urllib3.poolmanager", "urllib3.connection",
                "urllib3.response", "urllib3.util.retry", "requests")
_log_filter = SecretLogFilter()


def install_log_filter() -> None:
    """Attach :class:`SecretLogFilter` to the HTTP libraries' loggers (idempotent; done when a client is made)."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _log_filter not in logger.filters:
            logger.addFilter(_log_filter)
