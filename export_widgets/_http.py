"""The HTTP plumbing both clients share: one session, timeouts, and turning failures into typed errors."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from . import _version
from .errors import ResponseFormatError, TransportError
from .redact import redact_text

__all__ = ["DEFAULT_TIMEOUT", "HttpClient", "Reply", "USER_AGENT", "body_snippet"]

USER_AGENT = f"export-widgets/{_version.__version__} python-requests/{requests.__version__}"
#: (connect, read) seconds. Status calls are small: a minute-long read means something is wrong.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)

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
    """Base of the provider clients: a ``requests.Session`` with a signing hook, timeouts and error mapping."""

    #: The provider's registry name and how people write it (set by each provider's client).
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str,
        auth: requests.auth.AuthBase | None,
        *,
        timeout: float | tuple[float, float] | None = None,
        session: requests.Session | None = None,
        default_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if session is None:
            session = requests.Session()
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
        """Send one request; map transport failures to :class:`TransportError`. Does not judge the status."""
        data = None
        headers = {"Content-Type": "application/json"}
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
        try:
            response = self._session.request(method, url, data=data, headers=headers, timeout=self.timeout)
        except requests.Timeout as exc:
            raise self._transport_error(operation, f"timed out (timeout={self.timeout}s)", exc) from exc
        except requests.ConnectionError as exc:
            raise self._transport_error(operation, f"connection failed: {_reason(exc)}", exc) from exc
        except requests.RequestException as exc:
            raise self._transport_error(operation, f"request failed: {_reason(exc)}", exc) from exc
        content = response.content
        try:
            body = json.loads(content) if content else None
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; "[[[[…" nests too deep
            body = None
        return Reply(response.status_code, response.headers, body, content, response.elapsed.total_seconds())

    def _transport_error(self, operation: str, what: str, exc: BaseException) -> TransportError:
        host = self.base_url.split("://", 1)[-1]
        return TransportError(redact_text(f"{self._display_name()} {operation} to {host} {what}"),
                              provider=self.provider, operation=operation)

    def _display_name(self) -> str:
        return self.label or self.name

    def _format_error(self, operation: str, reply: Reply) -> ResponseFormatError:
        return ResponseFormatError(provider=self.provider, operation=operation, http_status=reply.status,
                                   code="", message=redact_text(body_snippet(reply)),
                                   request_id=self._request_id(reply))

    def _request_id(self, reply: Reply) -> str:  # overridden per provider
        return ""


def _reason(exc: BaseException) -> str:
    """A short, readable cause for a requests exception (urllib3's own text is long and nested)."""
    text = " ".join(str(exc).split())
    errno = re.search(r"\[Errno -?\d+\] [^'\")(]+", text)
    if errno:
        return errno.group(0).strip()
    for marker in ("Connection reset by peer", "Connection aborted", "RemoteDisconnected", "IncompleteRead",
                   "Connection broken", "Read timed out"):
        if marker in text:
            return marker
    return f"{type(exc).__name__}: {text[:150]}"
