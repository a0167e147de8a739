"""Faults the simulator can inject per task: throttling, server errors, broken transport, odd bodies.

A :class:`Fault` is data (also loadable from a dict, so scenario files can carry it). It fires for ``times``
requests and/or inside a time window ``[after, until)`` measured in scenario seconds from the task's
creation (from the simulator's start for the ``"*"`` key, which matches every request). The
:class:`FaultBook` keeps the mutable part -- how many firings are left -- out of the frozen specs.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ANY_TASK", "DOWNLOAD_FAULT_KINDS", "FAULT_KINDS", "Fault", "FaultBook"]

#: Fault key that applies to every request, including the ModelArts list endpoint.
ANY_TASK = "*"

FAULT_KINDS: Mapping[str, str] = {
    "rate_limit": "HTTP 429 with Retry-After (retry_after, default 2 s) and the vendor's throttling body",
    "rate_limit_no_retry_after": "HTTP 429 with the vendor's throttling body and no Retry-After",
    "apig_throttle": "HTTP 429 with Huawei APIG's APIG.0308 body",
    "qps_limit": "Qianfan: HTTP 200 carrying code QPSLimitReached; ModelArts: 429 ModelArts.4395",
    "server_error": "HTTP 500/502/503/504 (status, default 500) with the vendor's error body",
    "slow": "answer normally after `seconds` (default 2 s)",
    "timeout": "hold the connection `seconds` (default 90 s, interrupted by shutdown), then close it unanswered",
    "drop": "close the connection without answering",
    "reset_mid_body": "send the headers and half the body, then close",
    "html": "an HTML error page with `status` (default 502)",
    "empty_body": "HTTP 200 with an empty body",
    "malformed_json": "HTTP 200 with truncated JSON",
    "error_in_200": "HTTP 200 carrying a vendor error body (`code`/`message` override it)",
    "unknown_status": "a task status the docs do not list (`value` overrides it)",
    "missing_fields": "the task with every optional field dropped",
    "ill_typed": "progress as a string, counts null or negative, times as text",
    "huge_body": "the task plus `size` bytes (default 5 MB) of padding in an extra field",
    "not_found": "the vendor's missing-task answer (`status` 404 turns ModelArts' 400 into a 404)",
    "auth_revoked": "HTTP 403: the credentials were revoked",
    "download_cut": "download only: send the headers and the first `size` body bytes (default half), then close",
    "download_error": "download only: HTTP `status` (default 503) in BOS's JSON error style",
    "download_slow": "download only: pause `seconds` (default 0.05) between 64 KiB pieces of the body",
    "download_no_range": "download only: ignore Range and If-Range, answer 200 with the whole file",
}

#: Kinds that fire only on downloads of the export file (keyed by the task id); the others never do.
DOWNLOAD_FAULT_KINDS = frozenset(kind for kind in FAULT_KINDS if kind.startswith("download_"))

_AUTO = "auto"


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour.

    Parameters
    ----------
    kind : str
        One of :data:`FAULT_KINDS`.
    times : int or None
        How many requests it spoils; None = all of them. Default: 1, or unlimited when a window is given.
    after, until : float, optional
        Window in scenario seconds since the task was created (since simulator start for ``"*"``).
    status, seconds, retry_after, code, message, value, size
        Per-kind knobs (see :data:`FAULT_KINDS`); None means the kind's default.
    """

    kind: str
    times: int | None | str = _AUTO
    after: float | None = None
    until: float | None = None
    status: int | None = None
    seconds: float | None = None
    retry_after: int | None = None
    code: str | None = None
    message: str | None = None
    value: str | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(FAULT_KINDS)}")
        if self.times == _AUTO:
            windowed = self.after is not None or self.until is not None
            object.__setattr__(self, "times", None if windowed else 1)
        if self.times is not None and (not isinstance(self.times, int) or self.times < 1):
            raise ValueError(f"fault times must be a positive integer or None, got {self.times!r}")
        if self.kind == "download_error" and self.status is not None and self.status < 400:
            raise ValueError(f"download_error status must be an HTTP error (>= 400), got {self.status}")
        if self.kind == "server_error" and self.status not in (None, 500, 502, 503, 504):
            raise ValueError(f"server_error status must be 500, 502, 503 or 504, got {self.status}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status must be an HTTP status code, got {self.status}")
        for name in ("seconds", "retry_after", "size"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"fault {name} must be >= 0, got {value}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | str) -> Fault:
        """Build from a dict such as ``{"kind": "rate_limit", "retry_after": 3}`` (or just a kind name)."""
        if isinstance(data, str):
            return cls(kind=data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """The non-default fields, JSON-ready."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name == "kind" or getattr(self, f.name) != f.default}

    def scaled(self, factor: float) -> Fault:
        """The same fault with its time window multiplied by ``factor`` (transport delays stay real seconds)."""
        return dataclasses.replace(
            self,
            after=None if self.after is None else self.after * factor,
            until=None if self.until is None else self.until * factor,
        )

    def active_at(self, elapsed: float) -> bool:
        """Whether ``elapsed`` scenario seconds fall inside the window."""
        return (self.after is None or elapsed >= self.after) and (self.until is None or elapsed < self.until)


class _Armed:
    __slots__ = ("fault", "left")

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.left: int | None = fault.times if isinstance(fault.times, int) else None  # "auto" is resolved by now


class FaultBook:
    """Thread-safe per-key fault queues; :meth:`take` consumes the first fault that applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed: dict[str, list[_Armed]] = {}

    def set(self, key: str, faults: Iterable[Fault | Mapping[str, Any] | str]) -> None:
        """Replace the faults for ``key`` (a task id or :data:`ANY_TASK`); an empty list clears them."""
        armed = [_Armed(f if isinstance(f, Fault) else Fault.from_dict(f)) for f in faults]
        with self._lock:
            if armed:
                self._armed[key] = armed
            else:
                self._armed.pop(key, None)

    def add(self, key: str, fault: Fault) -> None:
        """Append one fault for ``key``."""
        with self._lock:
            self._armed.setdefault(key, []).append(_Armed(fault))

    def clear(self, key: str | None = None) -> None:
        """Forget the faults for ``key``, or all of them."""
        with self._lock:
            if key is None:
                self._armed.clear()
            else:
                self._armed.pop(key, None)

    def pending(self, key: str) -> list[Fault]:
        """Faults for ``key`` that can still fire."""
        with self._lock:
            return [a.fault for a in self._armed.get(key, []) if a.left is None or a.left > 0]

    def take(self, key: str, elapsed: float, *, download: bool = False) -> Fault | None:
        """Consume and return the first fault for ``key`` active at ``elapsed`` seconds, if any.

        ``download`` picks the family: download kinds for file downloads, every other kind for API calls.
        """
        with self._lock:
            for armed in self._armed.get(key, []):
                if (armed.fault.kind in DOWNLOAD_FAULT_KINDS) != download:
                    continue
                if (armed.left is None or armed.left > 0) and armed.fault.active_at(elapsed):
                    if armed.left is not None:
                        armed.left -= 1
                    return armed.fault
        return None
