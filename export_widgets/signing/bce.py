"""Baidu Cloud ``bce-auth-v1`` request signing (used by Qianfan console APIs), one pure function per spec step.

The steps follow Baidu AI Cloud's "Generating an authentication string"
(https://cloud.baidu.com/doc/Reference/s/njwvz1yfu) and are pinned byte for byte by golden vectors that the
official ``baidubce.auth.bce_v1_signer`` produced (``tests/vectors/bce_auth_v1.json``). The body is not signed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from urllib.parse import parse_qsl, quote, urlsplit

import requests

__all__ = [
    "BceAuth",
    "DEFAULT_HEADERS_TO_SIGN",
    "authorization_header",
    "auth_string_prefix",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "format_bce_date",
    "signature",
    "signing_key",
]

log = logging.getLogger(__name__)

DATE_HEADER = "x-bce-date"
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: What bce_v1_signer signs when the caller names no headers.
DEFAULT_HEADERS_TO_SIGN = frozenset({"host", "content-md5", "content-length", "content-type"})
#: What this package signs: enough to bind the request to host, content type and time.
SIGNED_HEADERS = frozenset({"host", "content-type", DATE_HEADER})


@lru_cache(maxsize=4096)  # header values and the action repeat on every poll
def _encode(text: str) -> str:
    """Percent-encode all but ``A-Z a-z 0-9 - _ . ~`` (so ``/`` and ``:`` are encoded too)."""
    return quote(text, safe="-_.~")


def format_bce_date(moment: datetime) -> str:
    """``x-bce-date`` value for an aware datetime, e.g. ``2024-06-01T12:00:00Z``."""
    return moment.astimezone(timezone.utc).strftime(_DATE_FORMAT)


def auth_string_prefix(access_key: str, bce_date: str, expiration: int) -> str:
    """Step 2: ``bce-auth-v1/{AK}/{date}/{expiration}``."""
    return f"bce-auth-v1/{access_key}/{bce_date}/{expiration}"


def signing_key(secret_key: str, prefix: str) -> str:
    """Step 3: hex HMAC-SHA256(SK, prefix); the hex *text* keys the final signature."""
    return hmac.new(secret_key.encode("utf-8"), prefix.encode("utf-8"), hashlib.sha256).hexdigest()


def canonical_query(params: Iterable[tuple[str, str | None]]) -> str:
    """Step 5: ``enc(k)=enc(v)`` per parameter (None gives ``k=``), sorted, joined by ``&``."""
    return "&".join(sorted(f"{_encode(k)}={_encode(v or '')}" for k, v in params))


def canonical_headers(
    headers: Mapping[str, str], headers_to_sign: Collection[str] | None = None
) -> tuple[str, list[str]]:
    """Step 6: the canonical header block and the sorted signed header names.

    A header is signed when its trimmed value is non-empty and its name starts with ``x-bce-`` or is listed.
    """
    wanted = {name.lower() for name in headers_to_sign} if headers_to_sign else DEFAULT_HEADERS_TO_SIGN
    lines, names = [], []
    for name, value in headers.items():
        lowered, trimmed = name.lower(), str(value).strip()
        if trimmed and (lowered.startswith("x-bce-") or lowered in wanted):
            lines.append(f"{_encode(lowered)}:{_encode(trimmed)}")
            names.append(lowered)
    return "\n".join(sorted(lines)), sorted(names)


def canonical_request(
    method: str,
    path: str,
    params: Iterable[tuple[str, str | None]],
    headers: Mapping[str, str],
    headers_to_sign: Collection[str] | None = None,
) -> tuple[str, list[str]]:
    """Step 7: ``METHOD\\nURI\\nQUERY\\nHEADERS`` and the signed header names. The URI is used as given."""
    header_block, names = canonical_headers(headers, headers_to_sign)
    return "\n".join([method.upper(), path, canonical_query(params), header_block]), names


def signature(key: str, canonical: str) -> str:
    """Step 8."""
    return hmac.new(key.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization_header(prefix: str, names: Iterable[str], sig: str) -> str:
    """Step 9: ``{prefix}/{names joined by ;}/{signature}``.

    Like the official signer, the list is the caller's ``headers_to_sign`` as given, not the headers that
    step 6 actually signed (those differ for empty values and unlisted ``x-bce-*`` headers).
    """
    return f"{prefix}/{';'.join(names)}/{sig}"


class BceAuth(requests.auth.AuthBase):
    """A ``requests`` auth hook that signs each request with bce-auth-v1."""

    def __init__(
        self,
        access_key: str,
        secret_key: str,
        *,
        expiration: int = 1800,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.access_key = access_key
        self._secret_key = secret_key
        self.expiration = expiration
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return "BceAuth(access_key=***)"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(request.url or "")
        headers = request.headers
        headers.pop("Authorization", None)
        headers["Host"] = parts.netloc
        bce_date = format_bce_date(self._clock())
        headers[DATE_HEADER] = bce_date

        prefix = auth_string_prefix(self.access_key, bce_date, self.expiration)
        canonical, names = canonical_request(
            request.method or "POST",
            parts.path or "/",
            parse_qsl(parts.query, keep_blank_values=True),
            headers,
            SIGNED_HEADERS,
        )
        headers["Authorization"] = authorization_header(
            prefix, sorted(names), signature(signing_key(self._secret_key, prefix), canonical)
        )
        log.debug("bce-auth-v1 canonical request:\n%s", canonical)
        return request
