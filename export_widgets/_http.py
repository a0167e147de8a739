"""The HTTP plumbing both clients share: one session, timeouts, and turning failures into typed errors."""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import socket
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from . import _version
from ._coerce import replace_surrogates
from ._deadline import Deadline, DeadlineAdapter
from .config import warn_if_plaintext
from .errors import APIError, ConfigError, ExportWidgetsError, ResponseFormatError, TransportError
from .redact import install_log_filter, redact_text

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "HttpClient",
    "RedactedCause",
    "Reply",
    "USER_AGENT",
    "body_snippet",
]

USER_AGENT = f"export-widgets/{_version.__version__} python-requests/{requests.__version__}"
#: (connect, read) seconds, each socket operation. Status calls are small: a minute-long read means trouble.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
#: Seconds for a whole request: connect, headers and the entire body (a trickling server cannot hold a poll).
DEFAULT_REQUEST_TIMEOUT = 30.0
#: Largest answer accepted, counted after decompression (a status answer is a few KiB; a list page ~100 KiB).
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_CHUNK = 64 * 1024
# A lone UTF-16 surrogate in JSON: escaped ("\\udc80") or as raw UTF-8 bytes (json.loads lets both through).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")

_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Reply:
    """A decoded HTTP answer: status, headers and the JSON body (None when it is not JSON)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    content: bytes
    elapsed: float

    @property
    def text(self) -> str:
        """The body as text, decoded only when an error message needs it (``response.text`` would guess the
        charset of every answer, which costs more than signing and parsing together)."""
        return self.content.decode("utf-8", errors="replace")


def body_snippet(reply: Reply, limit: int = 160) -> str:
    """A short, tag-free, one-line excerpt of a non-JSON body for error messages."""
    text = " ".join(html.unescape(_TAGS.sub(" ", reply.text)).split())
    kind = reply.headers.get("Content-Type", "unknown type").split(";")[0]
    if not text:
        return f"empty body ({kind})"
    return f"non-JSON body ({kind}): {text[:limit]}{'…' if len(text) > limit else ''}"


class HttpClient:
    """Base of the provider clients: a ``requests.Session`` with a signing hook, timeouts and error mapping.

    ``timeout`` bounds each connect and each read (seconds, or ``(connect, read)``); ``request_timeout`` bounds
    the whole request, body included (default 30 s); ``max_response_bytes`` bounds the answer after
    decompression (default 8 MiB). Redirects are never followed.
    """

    #: The provider's registry name and how people write it (set by each provider's client).
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str,
        auth: requests.auth.AuthBase | None,
        *,
        timeout: float | tuple[float, float] | None = None,
        request_timeout: float | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        session: requests.Session | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.request_timeout = DEFAULT_REQUEST_TIMEOUT if request_timeout is None else float(request_timeout)
        if not self.request_timeout > 0:
            raise ConfigError(f"request_timeout must be a positive number of seconds, got {request_timeout!r}")
        self.max_response_bytes = max_response_bytes
        install_log_filter()
        if auth is not None:
            warn_if_plaintext(base_url)
        if session is None:
            session = requests.Session()
            # Our pools let the request's deadline shut a trickling connection down (see _deadline).
            session.mount("http://", DeadlineAdapter())
            session.mount("https://", DeadlineAdapter())
            # requests re-reads proxy and CA-bundle env vars on *every* request (~1 ms each here); read them
            # once, now, so a poll costs no more than its round trip.
            session.trust_env = False
            session.proxies.update(requests.utils.get_environ_proxies(base_url))
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                session.verify = bundle
        self._session = session
        self._session.auth = auth
        # Signed headers must go out unchanged, so keep the set small and fixed.
        self._session.headers.clear()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json",
                                      **(default_headers or {})})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def provider(self) -> str:
        """The provider's registry name (``name``; kept for code written against earlier versions)."""
        return self.name

    @property
    def session(self) -> requests.Session:
        """The underlying session (one connection pool per client)."""
        return self._session

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, operation: str, method: str, url: str, *, json_body: Any = None) -> Reply:
        """Send one request within one total deadline; map every transport failure to :class:`TransportError`.

        Judges only what the transport must: a redirect (never followed) is an :class:`APIError`, an answer larger
        than ``max_response_bytes`` once decompressed a :class:`ResponseFormatError`. Other statuses are the
        caller's. No exception from requests, urllib3 or http.client escapes, and none is chained as it was: their
        texts carry URLs and header values, so the error's ``__cause__`` is a redacted description instead.
        """
        data = None
        headers = {"Content-Type": "application/json"}
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
        failure: ExportWidgetsError | None = None
        reply: Reply | None = None
        started = time.monotonic()
        with Deadline(self.request_timeout) as deadline:
            response: requests.Response | None = None
            answered: list[requests.Response] = []  # requests parses a 3xx's Location even when not following
            try:
                response = self._session.request(method, url, data=data, headers=headers, stream=True,
                                                  allow_redirects=False, timeout=self._socket_timeouts(deadline),
                                                  hooks={"response": lambda r, *args, **kwargs: answered.append(r)})
                if deadline.expired:
                    raise _Expired()
                if 300 <= response.status_code < 400:
                    failure = self._redirect_error(operation, url, response)
                else:
                    content = _read_body(response, self.max_response_bytes, deadline)
                    if deadline.expired:  # the shut-down socket can read as a clean end of headers or body
                        raise _Expired()
                    reply = Reply(response.status_code, response.headers, None, content, 0.0)
            except _TooLarge as exc:
                status = None if response is None else response.status_code
                failure = ResponseFormatError(provider=self.provider, operation=operation, http_status=status,
                                              message=f"answer larger than {exc.limit:,} bytes{exc.how}: "
                                              "not an export-task status")
            except ExportWidgetsError as exc:  # e.g. a signing hook's own ConfigError
                failure = exc
            except Exception as exc:  # noqa: BLE001 - whatever the stack raises, the caller gets a typed error
                if answered and 300 <= answered[0].status_code < 400:  # an unparsable Location
                    response = answered[0]
                    failure = self._redirect_error(operation, url, response)
                else:
                    failure = self._transport_error(operation, self._what_failed(exc, deadline), exc)
            finally:
                if response is not None and response.raw is not None:  # None: an adapter without a stream
                    response.close()
                # Break the cycle response -> request -> hook -> list -> response, which would keep the
                # connection pool (and its sockets) alive until the next garbage collection.
                answered.clear()
        if failure is not None:
            raise failure  # outside the except blocks: no __context__ carries the raw exception
        assert reply is not None  # set whenever no failure was recorded
        try:
            body = json.loads(reply.content) if reply.content else None
            if body is not None and _SURROGATE.search(reply.content):
                body = replace_surrogates(body)  # one walk, only for the rare body that needs it
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; "[[[[…" nests too deep
            body = None
        return Reply(reply.status, reply.headers, body, reply.content, time.monotonic() - started)

    def _socket_timeouts(self, deadline: Deadline) -> tuple[float, float]:
        """The per-operation (connect, read) timeouts, never beyond what is left of the deadline."""
        connect, read = self.timeout if isinstance(self.timeout, tuple) else (self.timeout, self.timeout)
        left = deadline.remaining()
        return min(float(connect), left), min(float(read), left)

    def _what_failed(self, exc: BaseException, deadline: Deadline) -> str:
        if deadline.expired or isinstance(exc, _Expired) or time.monotonic() >= deadline.at:
            return f"did not finish within its {self.request_timeout:g} s deadline"
        if isinstance(exc, requests.Timeout):
            return f"timed out (timeout={self.timeout}s)"
        if isinstance(exc, requests.ConnectionError):
            return f"connection failed: {_reason(exc)}"
        if isinstance(exc, (requests.RequestException, http.client.HTTPException, zlib.error)):
            return f"failed, malformed answer: {_reason(exc)}"
        return f"failed: {type(exc).__name__}"  # its text may quote a header value: the type alone

    def _redirect_error(self, operation: str, url: str, response: requests.Response) -> APIError:
        """A 3xx: the export-task APIs never redirect, and following one would send our tokens elsewhere."""
        location = response.headers.get("Location", "")
        try:
            host = urlsplit(urljoin(url, location)).hostname if location else None
            host = host.encode("ascii").decode() if host else None  # shown as it came, or not at all
        except (ValueError, UnicodeError):
            host = None
        target = f"to host {host}" if host else "without a usable Location"
        return APIError(provider=self.provider, operation=operation, http_status=response.status_code,
                        message=redact_text(f"redirected {target}; the export-task APIs never redirect, so "
                                            "check the endpoint (redirects are not followed)"),
                        request_id=self._request_id(Reply(response.status_code, response.headers, None, b"", 0.0)))

    def _transport_error(self, operation: str, what: str, exc: BaseException) -> TransportError:
        host = self.base_url.split("://", 1)[-1]
        error = TransportError(redact_text(f"{self._display_name()} {operation} to {host} {what}"),
                               provider=self.provider, operation=operation, connected=not _no_connection(exc))
        error.__cause__ = RedactedCause(f"{type(exc).__module__}.{type(exc).__name__}: {what}")
        error.__suppress_context__ = True
        return error

    def _display_name(self) -> str:
        return self.label or self.name

    def _format_error(self, operation: str, reply: Reply) -> ResponseFormatError:
        return ResponseFormatError(provider=self.provider, operation=operation, http_status=reply.status,
                                   code="", message=redact_text(body_snippet(reply)),
                                   request_id=self._request_id(reply))

    def _request_id(self, reply: Reply) -> str:  # overridden per provider
        return ""


def _no_connection(exc: BaseException) -> bool:
    """True when ``exc`` says no connection could be made (refused, name not resolved, connect timeout), as
    opposed to a connection that was made and then dropped or timed out reading."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    todo: list[object] = [exc]
    while todo and len(seen) < 32:  # requests wraps urllib3 wraps socket errors, in args, reason and causes
        item = todo.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError, socket.gaierror)):
            return True
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return False


class RedactedCause(Exception):
    """Stands in as ``__cause__`` for a transport exception whose own text may hold URLs or header values."""


class _TooLarge(Exception):
    def __init__(self, limit: int, how: str) -> None:
        super().__init__(limit)
        self.limit, self.how = limit, how


class _Expired(Exception):
    """The deadline passed between two body chunks."""


def _decompressor(encoding: str) -> Any:
    """A streaming decoder for ``Content-Encoding`` (None: keep the bytes as they are)."""
    name = encoding.strip().lower()
    if name in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if name == "deflate":
        return zlib.decompressobj()
    return None  # identity, or an encoding we never asked for: the JSON decode will say it is not JSON


def _declared_length(value: str | None) -> int | None:
    """``Content-Length`` as a number; one that is not a number (or two that differ) is malformed HTTP."""
    if value is None:
        return None
    lengths = {part.strip() for part in value.split(",")}  # a repeated header arrives joined by ", "
    if len(lengths) != 1 or not next(iter(lengths)).isdigit():
        raise http.client.HTTPException("invalid Content-Length header")
    return int(lengths.pop())


def _inflate(decoder: Any, data: bytes, room: int) -> Iterator[bytes]:
    """Decompress ``data`` in pieces of at most ``_CHUNK`` bytes, stopping once more than ``room`` came out:
    a 64 KiB chunk of a compression bomb never inflates in one go."""
    while data:
        piece = decoder.decompress(data, min(_CHUNK, room + 1))
        yield piece
        room -= len(piece)
        if room < 0:
            return
        data = decoder.unconsumed_tail


def _read_body(response: requests.Response, limit: int, deadline: Deadline) -> bytes:
    """The body, decompressed chunk by chunk against ``limit`` so a compression bomb never inflates in memory."""
    preloaded = response.__dict__.get("_content", False)
    if preloaded is not False:  # an adapter that answered without a stream (tests, custom sessions)
        content = preloaded or b""
        response._content_consumed = True  # type: ignore[attr-defined]
        if len(content) > limit:
            raise _TooLarge(limit, "")
        return bytes(content)
    declared = _declared_length(response.headers.get("Content-Length"))
    if declared is not None and declared > limit:
        raise _TooLarge(limit, " (declared Content-Length)")
    decoder = _decompressor(response.headers.get("Content-Encoding", ""))
    parts: list[bytes] = []
    size = 0
    for chunk in response.raw.stream(_CHUNK, decode_content=False):
        if time.monotonic() > deadline.at:
            raise _Expired()
        for piece in _inflate(decoder, chunk, limit - size) if decoder is not None else (chunk,):
            size += len(piece)
            if size > limit:
                raise _TooLarge(limit, " after decompression" if decoder is not None else "")
            parts.append(piece)
    if decoder is not None:
        parts.append(decoder.flush())
        size += len(parts[-1])
        if size > limit:
            raise _TooLarge(limit, " after decompression")
        if not decoder.eof and size:
            raise zlib.error("compressed body ends early")
    content = b"".join(parts)
    # Mark the Response consumed, so close() hands the connection back to the pool instead of closing it.
    response._content = content
    response._content_consumed = True  # type: ignore[attr-defined]
    return content


def _reason(exc: BaseException) -> str:
    """A short, readable cause for a requests exception (urllib3's own text is long and nested)."""
    text = " ".join(str(exc).split())
    errno = re.search(r"\[Errno -?\d+\] [^'\")(]+", text)
    if errno:
        return errno.group(0).strip()
    # A TLS failure (untrusted certificate, wrong name, not TLS at all): ssl's own reason, not urllib3's wrapper,
    # whose text names the request's path and cut the reason off after 150 characters.
    tls = re.search(r"\[SSL: \w+\] ([^(]+)", text)
    if tls:
        return f"TLS: {tls.group(1).strip()}"
    for marker in ("Connection reset by peer", "Connection aborted", "RemoteDisconnected", "IncompleteRead",
                   "Connection broken", "Read timed out"):
        if marker in text:
            return marker
    return f"{type(exc).__name__}: {text[:150]}"
