"""Keep secrets out of every output: signed URLs, AK/SK, tokens.

Two layers, because either alone misses something:

* **Patterns** catch what looks like a secret whatever its source: a URL's query string (pre-signed OBS/BOS
  download URLs carry ``?authorization=bce-auth-v1/...``), ``Authorization`` header values of both signing schemes,
  and ``X-Auth-Token``/``X-Security-Token`` values.
* **Known values**: clients register the credentials they were given (:func:`register_secret`), so an AK that a
  server echoes back in an error message is masked too.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "one_line", "redact_text", "redact_url", "register_secret"]

MASK = "***"

# A URL with a query or fragment: keep scheme/host/path, drop the rest.
_URL_WITH_QUERY = re.compile(r"""(?P<base>https?://[^\s?#"'<>]+)[?#][^\s"'<>]*""", re.IGNORECASE)
_SECRET_PATTERNS = (
    re.compile(r"(bce-auth-v1/)[^\s\"'<>,]+", re.IGNORECASE),
    re.compile(r"(SDK-HMAC-SHA256\s+)[^\"'<>\n]+", re.IGNORECASE),
    re.compile(r"((?:authorization|x-auth-token|x-security-token|x-subject-token)\s*[:=]\s*)[^\s\"'<>&,]+",
               re.IGNORECASE),
)
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
