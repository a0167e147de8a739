"""Server-side signature verification for both schemes, over the request exactly as received.

The canonical strings are rebuilt from the raw path, raw query, received headers and body bytes with the
``export_widgets.signing`` step functions, but the *assembly* and every check around them (parsing the
Authorization header, freshness, required headers) is separate code. Because a shared bug in the steps
could cancel out, ``tests/test_simulator.py`` feeds the official-SDK golden vectors through these functions.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl

from ..signing import bce, sdk_hmac

__all__ = ["MAX_CLOCK_SKEW", "Verdict", "verify_bce", "verify_sdk_hmac"]

#: APIG accepts X-Sdk-Date within 15 minutes of its own clock; BCE rejects dates this far in the future.
MAX_CLOCK_SKEW = 15 * 60

_SDK_AUTH = re.compile(
    r"^(?P<alg>\S+)\s+Access=(?P<ak>[^,\s]+),\s*SignedHeaders=(?P<names>[^,\s]+),\s*Signature=(?P<sig>[0-9a-fA-F]+)$"
)


@dataclass(frozen=True)
class Verdict:
    """Outcome of a verification. ``reason`` is a stable slug the app maps to vendor error bodies."""

    ok: bool
    reason: str = "ok"
    detail: str = ""
    access_key: str | None = None
    signed_headers: tuple[str, ...] = ()

    @classmethod
    def fail(cls, reason: str, detail: str, access_key: str | None = None) -> Verdict:
        """A rejection with a reason slug and a human-readable detail."""
        return cls(False, reason, detail, access_key)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.items():
        out.setdefault(name.lower(), value)
    return out


def verify_sdk_hmac(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], str | None],
    now: float,
) -> Verdict:
    """Check a Huawei ``SDK-HMAC-SHA256`` request.

    ``raw_query`` is used verbatim as the canonical query: APIG signs the query it receives, so a client
    that signs the sorted form but sends another order must fail here too. ``now`` is wall time.
    """
    lower = _lower(headers)
    header = lower.get("authorization", "").strip()
    if not header:
        return Verdict.fail("missing", "Authorization not found in header")
    match = _SDK_AUTH.match(header)
    if not match:
        return Verdict.fail("malformed", "Authorization header is not 'SDK-HMAC-SHA256 Access=..., "
                                         "SignedHeaders=..., Signature=...'")
    if match["alg"] != sdk_hmac.ALGORITHM:
        return Verdict.fail("unsupported_algorithm", f"signature algorithm {match['alg']} is not supported")
    access_key = match["ak"]
    names = match["names"].lower().split(";")
    for required in ("host", "x-sdk-date"):
        if required not in names:
            return Verdict.fail("unsigned_required_header", f"header {required} must be signed", access_key)
    missing = [name for name in names if name not in lower]
    if missing:
        return Verdict.fail("missing_signed_header", f"signed header {missing[0]} is not in the request", access_key)
    sdk_date = lower["x-sdk-date"].strip()
    try:
        signed_at = datetime.strptime(sdk_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return Verdict.fail("malformed_date", "X-Sdk-Date must look like 20240601T120000Z", access_key)
    if abs(now - signed_at) > MAX_CLOCK_SKEW:
        return Verdict.fail("expired", "X-Sdk-Date is more than 15 minutes away from the server time", access_key)
    secret = secret_for(access_key)
    if secret is None:
        return Verdict.fail("unknown_key", "the access key does not exist", access_key)

    canonical = "\n".join([
        method.upper(),
        sdk_hmac.canonical_uri(raw_path),
        raw_query,
        sdk_hmac.canonical_headers(lower, names),
        ";".join(names),
        sdk_hmac.payload_hash(body, lower),
    ])
    expected = sdk_hmac.signature(secret, sdk_hmac.string_to_sign(sdk_date, canonical))
    if not hmac.compare_digest(expected, match["sig"].lower()):
        return Verdict.fail("signature_mismatch", "verify aksk signature fail", access_key)
    return Verdict(True, access_key=access_key, signed_headers=tuple(names))


def verify_bce(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    secret_for: Callable[[str], str | None],
    now: float,
) -> Verdict:
    """Check a Baidu ``bce-auth-v1`` request (the body is not signed in this scheme). ``now`` is wall time."""
    lower = _lower(headers)
    header = lower.get("authorization", "").strip()
    if not header:
        return Verdict.fail("missing", "Authorization header is missing")
    parts = header.split("/")
    if len(parts) != 6 or parts[0] != "bce-auth-v1":
        return Verdict.fail("malformed", "Authorization must be bce-auth-v1/{ak}/{date}/{expiration}/{headers}/{sig}")
    _, access_key, auth_date, expiration_text, names_text, sig = parts
    try:
        signed_at = datetime.strptime(auth_date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        expiration = int(expiration_text)
        if expiration <= 0:
            raise ValueError
    except ValueError:
        return Verdict.fail("malformed", "bad timestamp or expiration in the authorization string", access_key)
    if lower.get("x-bce-date", "").strip() != auth_date:
        return Verdict.fail("date_mismatch", "x-bce-date does not match the authorization timestamp", access_key)
    if now > signed_at + expiration:
        return Verdict.fail("expired", f"the request expired: signed at {auth_date}, valid {expiration} s", access_key)
    if signed_at > now + MAX_CLOCK_SKEW:
        return Verdict.fail("expired", f"the request date {auth_date} is in the future", access_key)
    names = [name for name in names_text.lower().split(";") if name]
    if "host" not in (names or bce.DEFAULT_HEADERS_TO_SIGN):
        return Verdict.fail("unsigned_required_header", "header host must be signed", access_key)
    secret = secret_for(access_key)
    if secret is None:
        return Verdict.fail("unknown_key", "the access key id does not exist", access_key)

    prefix = "/".join(parts[:4])  # as sent, so "0300" and "300" are different strings, as for the server
    canonical, _ = bce.canonical_request(method, raw_path, parse_qsl(raw_query, keep_blank_values=True),
                                         lower, names or None)
    expected = bce.signature(bce.signing_key(secret, prefix), canonical)
    if not hmac.compare_digest(expected, sig.lower()):
        return Verdict.fail("signature_mismatch", "the request signature does not match", access_key)
    return Verdict(True, access_key=access_key, signed_headers=tuple(names))
