"""End-of-watch notifications to a chat webhook: Feishu/Lark, DingTalk, Slack, or plain JSON.

A :class:`Notification` says which task ended, how (final state, how the watch ended), after how long, with how many
samples, and the error if any; :meth:`Notification.text` is one short message with nothing secret in it.
:func:`payload` shapes it for the chat tool:

==========  ==========================================================  =========================================
format      body                                                        chosen by the URL's host
==========  ==========================================================  =========================================
feishu      ``{"msg_type": "text", "content": {"text": ...}}``          open.feishu.cn, open.larksuite.com
dingtalk    ``{"msgtype": "text", "text": {"content": ...}}``           oapi.dingtalk.com
slack       ``{"text": ...}``                                           hooks.slack.com
json        every field of the notification, plus ``text``              anything else
==========  ==========================================================  =========================================

A :class:`Notifier` sends off the polling path: :meth:`Notifier.send` puts the message on a queue and returns at
once; one process-wide daemon thread POSTs it with a timeout (5 s), retries transport errors, timeouts, 429 and 5xx
with exponential backoff (three retries), and then drops it with one ``logging.WARNING`` line. A 4xx or a chat
tool's own error code (DingTalk ``errcode``, Feishu ``code``) is not retried. The webhook URL is a secret (DingTalk
and Feishu carry their token in it): nothing here logs, shows or raises it beyond its host.

How the monitor, magic and CLI use it
-------------------------------------
::

    notifier = Notifier(url, format=None)           # --notify URL [--notify-format NAME]; ValueError if unusable
                                                    # (secret="SEC..." for a DingTalk/Feishu robot that signs)
    notifier.watch(monitor, stalled=True)           # one message when it ends (and one if it stalls, --notify-stalled)
    notifier.watch_group(group)                     # a dashboard: one summary once every task has ended
    on_done = notifier.notify_end                   # or call it yourself: watch(..., on_done=notifier.notify_end)
    notifier.flush(timeout=30)                      # the CLI, before exiting, so the last message goes out

DingTalk robots with a keyword check: the message starts with ``title`` (default ``[export_widgets]``); use that
as the keyword, or pass your own ``title``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import math
import queue
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .providers import provider_label
from .redact import MASK, redact_text, register_secret

__all__ = [
    "FORMATS",
    "Notification",
    "Notifier",
    "format_for",
    "notification_for",
    "payload",
    "stalled_notification",
    "summary_notification",
    "webhook_host",
]

log = logging.getLogger(__name__)

FORMATS = ("feishu", "dingtalk", "slack", "json")
_HOST_FORMATS: Mapping[str, str] = {
    "open.feishu.cn": "feishu",
    "open.larksuite.com": "feishu",
    "oapi.dingtalk.com": "dingtalk",
    "hooks.slack.com": "slack",
}
_FORMAT_ALIASES: Mapping[str, str] = {"lark": "feishu", "ding": "dingtalk", "plain": "json"}
DEFAULT_TITLE = "[export_widgets]"
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 1.0
_MAX_BACKOFF = 30.0
_MAX_ERROR_CHARS = 300


# -- the URL ------------------------------------------------------------------------------------------------------

def webhook_host(url: str) -> str:
    """The URL's host (``host:port`` with a port): the only part of a webhook URL ever shown."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except (ValueError, AttributeError):
        return MASK
    if not host:
        return MASK
    return f"{host}:{port}" if port else host


def format_for(url: str, explicit: str | None = None) -> str:
    """The payload format: ``explicit`` when given (``feishu``/``lark``, ``dingtalk``, ``slack``, ``json``), else
    by the URL's host, else ``json``. Raises ``ValueError`` for a URL that is not http(s) or an unknown name."""
    try:
        parts = urlsplit(url.strip())
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except (ValueError, AttributeError):
        ok = False
    if not ok:  # never echo the URL: it carries the token
        raise ValueError("the notification webhook must be an http(s) URL, e.g. "
                         "https://open.feishu.cn/open-apis/bot/v2/hook/<token>")
    if explicit:
        name = _FORMAT_ALIASES.get(explicit.strip().lower(), explicit.strip().lower())
        if name not in FORMATS:
            raise ValueError(f"unknown notification format {explicit!r}: use one of {', '.join(FORMATS)}")
        return name
    return _HOST_FORMATS.get((parts.hostname or "").lower(), "json")


def _url_secrets(url: str) -> list[str]:
    """Path segments and query values of the URL that could be its token (to mask in a server's answer)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    pieces = [segment for segment in parts.path.split("/") if len(segment) >= 6]
    pieces += [value for _, value in parse_qsl(parts.query) if len(value) >= 6]
    return sorted(set(pieces), key=len, reverse=True)


# -- the message ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Notification:
    """What a notification says. ``event`` is ``ended``, ``stalled`` or ``all_ended`` (then ``tasks`` holds one
    ``ended`` notification per task). Texts are redacted when made from a monitor and again in :func:`payload`."""

    event: str
    provider: str
    task_id: str
    state: str | None = None  # the task's last known state (SUCCEEDED, FAILED, RUNNING, ...)
    status: str | None = None  # how the watch ended: finished, timed_out, stopped, error
    duration_s: float | None = None
    progress: float | None = None
    finished_samples: int | None = None
    total_samples: int | None = None
    error: str | None = None
    unchanged_for_s: float | None = None
    tasks: tuple[Notification, ...] = field(default_factory=tuple)

    def text(self, title: str = DEFAULT_TITLE) -> str:
        """The message people read: one line per task."""
        if self.event == "all_ended":
            counts: dict[str, int] = {}
            for task in self.tasks:
                counts[task.state or "UNKNOWN"] = counts.get(task.state or "UNKNOWN", 0) + 1
            tally = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            lines = [f"{title} all {len(self.tasks)} exports ended: {tally}"]
            lines += [f"- {task._line()}" for task in self.tasks]
            return "\n".join(lines)
        return f"{title} {self._line()}"

    def _line(self) -> str:
        what = f"{provider_label(self.provider)} export {self.task_id}"
        figures = _samples(self.finished_samples, self.total_samples, self.progress)
        if self.event == "stalled":
            moved = f" for {_duration(self.unchanged_for_s)}" if self.unchanged_for_s is not None else ""
            parts = [f"{what} has not moved{moved}", f"{self.state or 'RUNNING'}{figures}"]
        elif self.status in (None, "finished"):
            took = f" after {_duration(self.duration_s)}" if self.duration_s is not None else ""
            parts = [f"{what} {self.state or 'ended'}{took}", figures.strip(" ,")]
        else:
            reason = {"timed_out": "the watch timed out", "stopped": "the watch was stopped",
                      "error": "the watch ended on an error"}.get(self.status, f"the watch ended ({self.status})")
            took = f" after {_duration(self.duration_s)}" if self.duration_s is not None else ""
            parts = [f"{what}: {reason}{took}", f"last state {self.state or 'unknown'}{figures}"]
        if self.error:
            parts.append(f"error: {self.error}")
        return " · ".join(p for p in parts if p)

    def as_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (the ``json`` format's body, without ``text``)."""
        data = asdict(self)
        data["tasks"] = [task.as_dict() for task in self.tasks]
        return data


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(max(0.0, seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def _samples(finished: int | None, total: int | None, progress: float | None) -> str:
    parts = []
    if progress is not None and math.isfinite(progress):
        parts.append(f" {progress:.0f}%")
    if finished is not None and total:
        parts.append(f" {finished:,}/{total:,} samples")
    elif finished is not None:
        parts.append(f" {finished:,} samples")
    return ",".join(parts)


def _clean(text: Any) -> str | None:
    if text is None:
        return None
    value = getattr(text, "value", text)
    cleaned = " ".join(redact_text(str(value)).split())
    return cleaned[:_MAX_ERROR_CHARS] or None


def notification_for(monitor: Any, event: str = "ended") -> Notification:
    """A notification from an :class:`~export_widgets.monitor.ExportMonitor` (its latest task, status, figures)."""
    task = monitor.latest
    figures = monitor.figures()
    duration = figures.elapsed_s
    if duration is None:
        duration = max(0.0, time.time() - monitor.started_at)
    error = getattr(monitor, "error", None)
    message = (str(error) if error is not None else None) or monitor.last_poll_error
    if message is None and task is not None and (task.error_code or task.error_message):
        message = ": ".join(p for p in (task.error_code, task.error_message) if p)
    return Notification(
        event=event, provider=monitor.provider, task_id=_clean(monitor.task_id) or "",
        state=_clean(task.state) if task is not None else None,
        status=_clean(monitor.status) if event == "ended" else None,
        duration_s=duration, progress=task.progress if task is not None else None,
        finished_samples=task.finished_samples if task is not None else None,
        total_samples=task.total_samples if task is not None else None,
        error=_clean(message), unchanged_for_s=figures.unchanged_for_s if event == "stalled" else None)


def stalled_notification(monitor: Any) -> Notification:
    """A "has not moved for ..." notification for a RUNNING task that stalled (``figures().stalled``)."""
    return notification_for(monitor, event="stalled")


def summary_notification(monitors: Iterable[Any]) -> Notification:
    """One notification for a whole dashboard once its tasks have ended."""
    tasks = tuple(notification_for(m) for m in monitors)
    return Notification(event="all_ended", provider="", task_id="", tasks=tasks,
                        duration_s=max((t.duration_s or 0.0 for t in tasks), default=None))


def payload(notification: Notification, fmt: str, title: str = DEFAULT_TITLE) -> dict[str, Any]:
    """The JSON body for ``fmt`` (one of :data:`FORMATS`); every text in it is redacted here, whoever built it."""
    text = redact_text(notification.text(title))
    if fmt == "feishu":
        return {"msg_type": "text", "content": {"text": text}}
    if fmt == "dingtalk":
        return {"msgtype": "text", "text": {"content": text}}
    if fmt == "slack":
        return {"text": text}
    if fmt == "json":
        return {**_redacted(notification.as_dict()), "text": text}
    raise ValueError(f"unknown notification format {fmt!r}: use one of {', '.join(FORMATS)}")


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


# -- sending ------------------------------------------------------------------------------------------------------

@dataclass
class NotifierStats:
    """Counters of one notifier (for tests and for ``repr``)."""

    queued: int = 0
    attempts: int = 0
    delivered: int = 0
    dropped: int = 0


class _Delivery:
    """One message on its way: the notifier it belongs to, the JSON body and a label for the warning."""

    def __init__(self, notifier: Notifier, body: dict[str, Any], label: str) -> None:
        self.notifier = notifier
        self.body = body
        self.label = label


class _Sender:
    """The process-wide daemon thread that POSTs queued notifications, one at a time."""

    def __init__(self, maxsize: int = 100) -> None:
        self.queue: queue.Queue[_Delivery | threading.Event] = queue.Queue(maxsize)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, item: _Delivery | threading.Event) -> bool:
        self._ensure_thread()
        try:
            self.queue.put_nowait(item)
        except queue.Full:
            return False
        return True

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="export-widgets-notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                item.notifier._deliver(item)
            except Exception:  # noqa: BLE001 - never let one message end the thread (and never log the URL)
                log.warning("export_widgets: a notification failed unexpectedly and was dropped")


_sender = _Sender()


class Notifier:
    """Sends notifications to one webhook, off the caller's thread (see the module docstring).

    Parameters
    ----------
    url : str
        The webhook (a secret: only its host is ever shown).
    format : str, optional
        ``feishu`` (or ``lark``), ``dingtalk``, ``slack`` or ``json``; default chosen by the URL's host.
    timeout : float
        Seconds for one attempt (connect and read).
    retries : int
        Further attempts after a transport error, timeout, 429 or 5xx.
    backoff : float
        Seconds before the first retry; doubles each time (at most 30 s).
    title : str
        Start of every message (a DingTalk robot's keyword).
    secret : str, optional
        The robot's signing secret (DingTalk "加签" ``SEC...``, Feishu/Lark "签名校验"): each attempt is signed.
    """

    def __init__(self, url: str, format: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 retries: int = DEFAULT_RETRIES, backoff: float = DEFAULT_BACKOFF, title: str = DEFAULT_TITLE,
                 secret: str | None = None) -> None:
        if not isinstance(url, str):
            raise ValueError("the notification webhook must be an http(s) URL given as a string")
        self.format = format_for(url, format)
        self.host = webhook_host(url)
        if not timeout > 0 or not retries >= 0 or not backoff >= 0:
            raise ValueError("Notifier: timeout must be > 0, retries and backoff >= 0")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.title = title
        self.stats = NotifierStats()
        self.__url = url.strip()  # name-mangled and never in repr: the URL is a secret
        self._secrets = _url_secrets(self.__url)
        if secret and self.format not in ("dingtalk", "feishu"):
            raise ValueError(f"a signing secret is for DingTalk and Feishu/Lark robots, not the {self.format} format")
        register_secret(secret)  # masked wherever it might turn up
        self.__secret = secret or None

    def __repr__(self) -> str:
        s = self.stats
        return (f"<Notifier {self.format} webhook at {self.host}: {s.delivered} delivered, {s.dropped} dropped, "
                f"{s.queued - s.delivered - s.dropped} pending>")

    # -- the caller's side (returns at once) -----------------------------------------------------------------

    def send(self, notification: Notification) -> bool:
        """Queue ``notification`` for delivery; returns at once (False, with a warning, when the queue is full)."""
        body = payload(notification, self.format, self.title)
        label = {"all_ended": "dashboard", "stalled": "stall"}.get(notification.event, "end-of-watch")
        if notification.task_id:
            label += f" notification for {notification.provider}:{notification.task_id}"
        else:
            label += " notification"
        self.stats.queued += 1
        if _sender.put(_Delivery(self, body, label)):
            return True
        self.stats.dropped += 1
        log.warning("export_widgets: too many notifications waiting; the %s to %s was dropped", label, self.host)
        return False

    def notify_end(self, monitor: Any) -> None:
        """Send the end-of-watch notification of ``monitor`` now (usable as an ``on_done`` callback)."""
        self.send(notification_for(monitor))

    def watch(self, monitor: Any, *, stalled: bool = False) -> None:
        """Notify once when ``monitor`` ends, and (``stalled``) once when its task stalls, via ``on_update``."""
        state = {"ended": False, "stalled": False}
        lock = threading.Lock()

        def on_update(m: Any) -> None:
            with lock:
                if m.done and not state["ended"]:
                    state["ended"] = True
                    self.notify_end(m)
                elif stalled and not state["stalled"] and not m.done and _running(m):
                    if m.figures().stalled:  # ~tens of µs: only for RUNNING tasks, only until it fires
                        state["stalled"] = True
                        self.send(stalled_notification(m))

        monitor.on_update(on_update)
        if getattr(monitor, "done", False):
            on_update(monitor)

    def watch_group(self, monitors: Iterable[Any]) -> None:
        """Notify once, with a summary, when every monitor of a dashboard has ended."""
        members = list(monitors)
        sent = threading.Event()
        lock = threading.Lock()

        def on_update(_: Any) -> None:
            with lock:
                if not sent.is_set() and all(m.done for m in members):
                    sent.set()
                    self.send(summary_notification(members))

        for member in members:
            member.on_update(on_update)
        on_update(None)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far (by any notifier) is delivered or dropped; False on timeout."""
        done = threading.Event()
        if not _sender.put(done):
            return False
        return done.wait(timeout)

    # -- the sender thread's side -----------------------------------------------------------------------

    def _deliver(self, delivery: _Delivery) -> None:
        reason = ""
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            self.stats.attempts += 1
            url, body = self._signed(delivery.body)  # per attempt: signatures carry the time
            reason, retry = self._post(url, json.dumps(body, ensure_ascii=False).encode("utf-8"))
            if not reason:
                self.stats.delivered += 1
                return
            if not retry:
                attempts = attempt
                break
            if attempt < attempts:
                time.sleep(min(_MAX_BACKOFF, self.backoff * 2 ** (attempt - 1)))
        self.stats.dropped += 1
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        log.warning("export_widgets: could not deliver the %s to the %s webhook at %s (%s; %s); dropped",
                    delivery.label, self.format, self.host, reason, tries)

    def _signed(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and body of one attempt, signed when the robot has a signing secret.

        DingTalk: ``&timestamp=<ms>&sign=<urlencoded base64 HMAC-SHA256(secret, "<ms>\\n<secret>")>`` on the URL.
        Feishu/Lark: ``"timestamp": "<s>", "sign": base64 HMAC-SHA256(key="<s>\\n<secret>", message="")`` in the body.
        """
        secret = self.__secret
        if not secret:
            return self.__url, body
        if self.format == "dingtalk":
            stamp = str(int(time.time() * 1000))
            digest = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
            sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
            joiner = "&" if urlsplit(self.__url).query else "?"
            return f"{self.__url}{joiner}timestamp={stamp}&sign={sign}", body
        stamp = str(int(time.time()))
        digest = hmac.new(f"{stamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
        return self.__url, {"timestamp": stamp, "sign": base64.b64encode(digest).decode(), **body}

    def _post(self, url: str, body: bytes) -> tuple[str, bool]:
        """One attempt: ("", _) when delivered, else (why, worth retrying). Never lets the URL into ``why``.

        Plain ``http.client`` rather than requests: urllib3 logs every request line (with the token in its path
        or query) at DEBUG, and its exceptions repeat the URL.
        """
        try:
            status, text = _http_post(url, body, self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s", True
        except ConnectionRefusedError:
            return "connection refused", True
        except (OSError, http.client.HTTPException) as exc:
            return f"could not connect ({type(exc).__name__})", True
        if status == 429 or status >= 500:
            return f"HTTP {status}", True
        if status >= 300:
            return f"HTTP {status}{self._detail(text)}", False
        return self._app_error(text), False

    def _app_error(self, text: str) -> str:
        """A chat tool's own error inside an HTTP 200 ("" when it accepted the message)."""
        try:
            answer = json.loads(text)
        except ValueError:
            return ""
        if not isinstance(answer, dict):
            return ""
        if self.format == "dingtalk" and answer.get("errcode", 0) not in (0, "0"):
            return f"DingTalk errcode {answer.get('errcode')}{self._detail(answer.get('errmsg'))}"
        if self.format == "feishu":
            code = answer.get("code", answer.get("StatusCode", 0))
            if code not in (0, "0", None):
                return f"Feishu code {code}{self._detail(answer.get('msg') or answer.get('StatusMessage'))}"
        return ""

    def _detail(self, text: Any) -> str:
        """A server's words, redacted, without the URL's token, short."""
        if not text:
            return ""
        cleaned = redact_text(" ".join(str(text).split()))
        for secret in self._secrets:
            cleaned = cleaned.replace(secret, MASK)
        return f": {cleaned[:120]}"


def _http_post(url: str, body: bytes, timeout: float) -> tuple[int, str]:
    """POST ``body`` as JSON; (status, answer text). Honours ``https_proxy``/``http_proxy``/``no_proxy``."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    proxy = None if urllib.request.proxy_bypass(host) else urllib.request.getproxies().get(parts.scheme)
    conn: http.client.HTTPConnection
    if proxy:
        p = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if parts.scheme == "https":
            conn = http.client.HTTPSConnection(p.hostname or "", p.port or 8080, timeout=timeout,
                                               context=ssl.create_default_context())
            conn.set_tunnel(host, port or 443)
        else:
            conn = http.client.HTTPConnection(p.hostname or "", p.port or 8080, timeout=timeout)
            target = url
    elif parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", target, body=body, headers={"Content-Type": "application/json; charset=utf-8",
                                                          "User-Agent": "export-widgets-notify"})
        response = conn.getresponse()
        text = response.read(64 * 1024).decode("utf-8", errors="replace")
        return response.status, text
    finally:
        conn.close()


def _running(monitor: Any) -> bool:
    task = monitor.latest
    return task is not None and getattr(task.state, "value", task.state) == "RUNNING"
