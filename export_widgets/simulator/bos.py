"""The simulated BOS object store behind a finished Qianfan export's ``downloadUrl``.

URL shape (path-style on the simulator's own address, so everything stays on 127.0.0.1)::

    http://127.0.0.1:PORT/bos/{bucket}/{key}?authorization=bce-auth-v1%2F{ak}%2F{date}%2F{ttl}%2Fhost%2F{signature}

The query is a BCE v1 pre-signature made with the simulator's own BOS key over ``GET``, the path and the
``host`` header; it is issued at each DescribeExportTask on the scenario clock and expires ``ttl`` scenario seconds
later. A GET (or HEAD) checks it strictly:

* no ``authorization`` -> 403 ``AccessDenied``; wrong key, path, host or signature -> 403 ``SignatureDoesNotMatch``;
  past its lifetime -> 403 ``RequestExpired`` (refresh by fetching the task again, as api-spec §5.4 says);
* no such object (or the export is not finished) -> 404 ``NoSuchKey``;
* ``Range: bytes=a-b`` / ``a-`` / ``-n`` -> 206 with ``Content-Range``; a range starting at or past the end, a
  backwards or malformed range, or several ranges -> 416 ``InvalidRange`` with ``Content-Range: bytes */SIZE``;
  ``If-Range`` with another validator -> the whole file (200). Other range units are ignored (200).

Errors use BOS's JSON style: ``{"code", "message", "requestId"}`` with ``x-bce-request-id``.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, unquote

from ..signing import bce
from .vendor import Response, json_response

__all__ = ["BOS_PREFIX", "RangeError", "bos_error", "check_presigned", "object_location", "parse_range", "presign"]

#: Path prefix of simulated BOS objects on the simulator's address.
BOS_PREFIX = "/bos/"
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


class RangeError(ValueError):
    """A Range header that cannot be satisfied (416)."""


def object_location(task_id: str, path: str | None) -> tuple[str, str]:
    """(bucket, key) of an export file from its ``storagePath`` ``bos:/bucket/key`` (platform storage otherwise)."""
    bucket, _, key = (path or "").removeprefix("bos:/").partition("/")
    if not (path or "").startswith("bos:/") or not bucket or not key:
        return "qianfan-sys-export", f"dataset-export/{task_id}/export.zip"
    return bucket, key


def _object_path(bucket: str, key: str) -> str:
    return f"{BOS_PREFIX}{quote(bucket, safe='')}/{quote(key, safe='/-_.~')}"


def _signature(secret: str, prefix: str, raw_path: str, host: str) -> str:
    canonical, _ = bce.canonical_request("GET", raw_path, [], {"host": host}, ["host"])
    return bce.signature(bce.signing_key(secret, prefix), canonical)


def presign(base_url: str, bucket: str, key: str, *, now: float, ttl: int, access_key: str, secret_key: str) -> str:
    """A pre-signed GET URL for ``bucket/key`` on ``base_url``, valid ``ttl`` seconds from ``now``."""
    host = base_url.split("://", 1)[1].rstrip("/")
    raw_path = _object_path(bucket, key)
    when = datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    prefix = f"bce-auth-v1/{access_key}/{when}/{ttl}"
    authorization = f"{prefix}/host/{_signature(secret_key, prefix, raw_path, host)}"
    return f"{base_url.rstrip('/')}{raw_path}?authorization={quote(authorization, safe='')}"


def split_object_path(raw_path: str) -> tuple[str, str] | None:
    """(bucket, key) from a raw ``/bos/{bucket}/{key}`` path, or None."""
    bucket, _, key = raw_path.removeprefix(BOS_PREFIX).partition("/")
    if not raw_path.startswith(BOS_PREFIX) or not bucket or not key:
        return None
    return unquote(bucket), unquote(key)


def check_presigned(raw_path: str, raw_query: str, host: str | None, *, now: float, access_key: str,
                    secret_key: str) -> tuple[int, str, str] | None:
    """None if the pre-signature is valid now, else (status, BOS code, message)."""
    params = dict(parse_qsl(raw_query, keep_blank_values=True))
    authorization = params.get("authorization")
    if not authorization:
        return 403, "AccessDenied", "Access denied."
    mismatch = (403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature "
                "you provided. Check your Secret Access Key and signing method.")
    parts = authorization.split("/")
    if len(parts) != 6 or parts[0] != "bce-auth-v1" or parts[1] != access_key or parts[4] != "host" or not host:
        return mismatch
    try:
        signed_at = datetime.strptime(parts[2], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        ttl = int(parts[3])
    except ValueError:
        return mismatch
    expected = _signature(secret_key, "/".join(parts[:4]), raw_path, host)
    if not hmac.compare_digest(expected, parts[5].lower()):
        return mismatch
    if now > signed_at + ttl:
        return 403, "RequestExpired", "The pre-signed URL has expired: fetch the export task again for a new one."
    return None


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``[start, end)`` for a ``Range`` header, None for no (or an ignorable) header; :class:`RangeError` -> 416."""
    if header is None or not header.strip().lower().startswith("bytes"):
        return None  # absent, or a unit other than bytes: ignored, as HTTP says
    if "," in header:
        raise RangeError("only one byte range per request")
    match = _RANGE.fullmatch(header)
    if not match or (not match[1] and not match[2]):
        raise RangeError(f"malformed range {header!r}")
    if not match[1]:  # suffix: the last n bytes
        length = int(match[2])
        if length == 0:
            raise RangeError("an empty suffix range")
        return max(0, size - length), size
    start = int(match[1])
    end = int(match[2]) + 1 if match[2] else size
    if start >= size or end <= start:
        raise RangeError(f"range {header!r} is outside a {size}-byte object")
    return start, min(end, size)


def bos_error(status: int, code: str, message: str, request_id: str,
              extra_headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A BOS-style JSON error."""
    response = json_response(status, {"code": code, "message": message, "requestId": request_id}, provider="qianfan",
                             request_id=request_id, extra_headers=extra_headers)
    return Response(response.status, tuple((("x-bce-request-id" if k == "X-Bce-Request-Id" else k), v)
                                           for k, v in response.headers), response.body)


def request_host(headers: Mapping[str, str]) -> str | None:
    """The ``Host`` header, as the signature covers it."""
    return headers.get("host")
