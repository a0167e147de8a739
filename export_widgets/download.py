"""Getting a finished export onto the local disk.

Qianfan: the task's ``downloadUrl`` (a pre-signed BOS URL) is streamed in chunks to ``.NAME.part`` next to the
target, resumed with HTTP ``Range`` after a dropped connection, re-signed by fetching the task again when the
URL has expired (403), checked against the server's length and the task's ``sizeMB`` (a rounded MiB figure),
then renamed into place: a file under the final name is always whole. The signed query is a bearer secret: it
is never shown, logged or put into an exception (urllib3's debug log of request lines is filtered too).

ModelArts: the result is an OBS directory; :func:`download_export` returns the ready-to-run ``obsutil`` command.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import requests

from . import _http
from .errors import ConfigError, ExportWidgetsError, Outcome, parse_retry_after
from .models import ExportTask, TaskState
from .providers import TaskRef, as_task_source
from .redact import install_log_filter, redact_text, redact_url
from .render import format_duration

__all__ = ["DownloadError", "DownloadProgress", "DownloadResult", "TextDownloadView", "copy_command",
           "download_export"]

MIB = 1024 * 1024
DEFAULT_CHUNK = 256 * 1024
#: (connect, read) seconds: a read that stalls this long is a dropped connection, resumed with Range.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 60.0)
#: Failed attempts in a row (no byte received) before giving up; an attempt that moved forward resets it.
MAX_FAILED_ATTEMPTS = 6
#: Times an expired or rejected URL is re-signed by fetching the task again.
MAX_REFRESHES = 3
_BACKOFF_CAP = 10.0
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})


class DownloadError(ExportWidgetsError):
    """The export could not be downloaded; the one-line message says why and what to do."""

    outcome = Outcome.API_ERROR


@dataclass
class DownloadProgress:
    """Where a download is: bytes so far, the total (when known), rate and ETA of this session."""

    task_id: str
    provider: str = ""
    total: int | None = None
    done: int = 0
    resumed_from: int = 0
    attempts: int = 0
    refreshes: int = 0
    finished: bool = False
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    #: The file it is written to (under its final name; never a URL).
    path: Path | None = None
    #: The file was already there, whole, from an earlier download: nothing was fetched.
    already: bool = False

    @property
    def elapsed(self) -> float:
        """Seconds since the download started (to its end once finished)."""
        return (self.ended or time.monotonic()) - self.started

    @property
    def rate(self) -> float | None:
        """Bytes per second received in this session (resumed bytes from disk do not count)."""
        moved = self.done - self.resumed_from
        return moved / self.elapsed if moved > 0 and self.elapsed > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds to the end at the current rate (None when unknown)."""
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(0.0, (self.total - self.done) / rate)

    @property
    def percent(self) -> float | None:
        return 100.0 * self.done / self.total if self.total else None

    def stats(self) -> list[str]:
        """Size, rate, ETA (or the time it took) and the recovery notes, in display order: the text line and the
        notebook card show the same words."""
        size = f"{self.done / MIB:,.1f} / {self.total / MIB:,.1f} MiB" if self.total else f"{self.done / MIB:,.1f} MiB"
        parts = [size]
        rate = self.rate
        if rate is not None:
            parts.append(f"{rate / MIB:,.1f} MiB/s")
        if self.already:
            return [*parts, "already there"]
        if self.finished:
            parts.append(f"done in {format_duration(self.elapsed)}")
        else:
            parts.append(f"ETA {format_duration(self.eta)}")
        if self.resumed_from:
            parts.append(f"resumed at {self.resumed_from / MIB:,.1f} MiB")
        if self.attempts > 1:
            parts.append(f"{self.attempts - 1} retries")
        if self.refreshes:
            parts.append(f"link refreshed {self.refreshes}x")
        return parts

    def line(self) -> str:
        """One status line, tqdm style, like the watch's: ``Qianfan task-1 download 42.0% |████ | 21.0 / 50.0 MiB
        12.3 MiB/s ETA 2s``."""
        from .providers import provider_label
        from .render import _text_bar  # the watch's own bar, so both lines look alike

        percent = self.percent
        return " ".join([f"{provider_label(self.provider)} {self.task_id} download",
                         f"{percent:.1f}%" if percent is not None else "–%", _text_bar(percent), *self.stats()])


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_export` produced.

    ``path`` is the downloaded file (Qianfan) or None; ``command`` is the copy command to run (ModelArts) or
    None; ``source`` is where the data lives, without any signed query.
    """

    task_id: str
    source: str
    path: Path | None = None
    size: int | None = None
    command: str | None = None
    progress: DownloadProgress | None = None
    #: True when the file was already there, whole, from an earlier download (nothing was fetched).
    already: bool = False

    def __str__(self) -> str:
        if self.path is not None and self.already:
            return (f"{self.task_id} is already downloaded to {self.path} ({(self.size or 0) / MIB:,.2f} MiB): "
                    "delete it to download it again")
        if self.path is not None:
            return f"downloaded {self.task_id} to {self.path} ({(self.size or 0) / MIB:,.2f} MiB)"
        return f"export {self.task_id} is in {self.source}; copy it with:\n  {self.command}"


class TextDownloadView:
    """Prints download progress lines: at most one per ``every`` seconds, plus the last one (a download shorter
    than ``every`` prints only its last line)."""

    def __init__(self, stream: IO[str] | None = None, *, every: float = 1.0,
                 write: Callable[[str], None] | None = None) -> None:
        self._write = write or (lambda text: _print(text, stream))
        self.every = every
        self._last = time.monotonic()  # the first line after `every` s: the first chunk's rate says little
        self.lines = 0

    def __call__(self, progress: DownloadProgress) -> None:
        now = time.monotonic()
        if progress.finished or now - self._last >= self.every:
            self._last = now
            self.lines += 1
            self._write(progress.line())


def _print(text: str, stream: IO[str] | None) -> None:
    import sys

    target = stream or sys.stdout
    target.write(text + "\n")
    target.flush()


# -- ModelArts ----------------------------------------------------------------------------------------------

def copy_command(task: ExportTask, directory: str | os.PathLike[str]) -> str:
    """The ``obsutil`` command that copies a ModelArts export's OBS directory into ``directory``."""
    source = _obs_url(task)
    return f"obsutil cp -r -f {_quote(source)} {_quote(str(Path(directory)) + os.sep)}"


def _obs_url(task: ExportTask) -> str:
    path = str(task.raw.get("path") or "") if task.raw else ""
    path = path or (task.destination or "")
    if not path or path.startswith("new dataset"):
        raise DownloadError(f"ModelArts export {task.task_id} has no OBS directory (it went to "
                            f"{task.destination or 'an unknown place'})")
    if path.startswith("obs://") or path.startswith("s3://"):
        return path if path.endswith("/") else path + "/"
    return "obs://" + path.strip("/") + "/"


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


# -- Qianfan ------------------------------------------------------------------------------------------------



def download_export(
    client: Any,
    ref: TaskRef,
    directory: str | os.PathLike[str],
    *,
    task: ExportTask | None = None,
    filename: str | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    overwrite: bool = False,
) -> DownloadResult:
    """Download the finished export ``ref`` into ``directory`` (created if missing).

    Qianfan: streams ``downloadUrl`` to ``directory/NAME`` (NAME from the URL, prefixed with the task id, or
    ``filename``) with ``progress(DownloadProgress)`` after each chunk; resumes a dropped connection with Range,
    re-signs an expired URL by fetching the task, checks the size, and renames a complete file into place.
    Safe under "Run All": a file already there under the final name with the size the task announces
    (``sizeMB``) is kept and nothing is fetched (:attr:`DownloadResult.already`), unless ``overwrite``.
    ModelArts: returns the ``obsutil`` command for the export's OBS directory (nothing is downloaded).
    Errors are one-line :class:`DownloadError` / :class:`ConfigError` and never contain the signed URL.
    """
    if chunk_size < 1024:
        raise ConfigError(f"chunk_size must be at least 1024 bytes, got {chunk_size}")
    source = as_task_source(client)
    by_link = getattr(source, "delivers_by_link", False)  # the provider's own fact: a link, or a copy command
    target_dir = Path(directory).expanduser()
    if task is None or task.state is not TaskState.SUCCEEDED or (by_link and not task.download_url):
        task = source.fetch(ref)  # the newest state, and a freshly signed URL
    if task.state is not TaskState.SUCCEEDED:
        raise DownloadError(f"export {ref.task_id} is {task.state.value}, not SUCCEEDED: wait for it to finish "
                            "(%export_status --wait, or export-widgets watch) and download again")
    if not task.download_url:
        if by_link:
            raise DownloadError(f"{source.label} export {ref.task_id} has no download link")
        return DownloadResult(ref.task_id, _obs_url(task), command=copy_command(task, target_dir))
    download = _Download(source, ref, task, target_dir, filename=filename, progress=progress, chunk_size=chunk_size,
                         timeout=timeout, session=session, sleep=sleep)
    return (None if overwrite else download.already_there()) or download.run()


def _file_name(task_id: str, url: str) -> str:
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "export.zip"
    return name if task_id in name else f"{task_id}-{name}"


def expected_size_range(size_mb: float | None) -> tuple[int, int] | None:
    """The byte sizes a ``sizeMB`` figure allows: it is rounded (to 2 decimals in practice) and counts MiB."""
    if size_mb is None or size_mb < 0:
        return None
    text = repr(float(size_mb))
    decimals = len(text.split(".", 1)[1]) if "." in text and "e" not in text else 2
    slack = 0.5 * 10 ** -max(2, min(decimals, 6)) * MIB + 1
    return max(0, int(size_mb * MIB - slack)), int(size_mb * MIB + slack) + 1


class _Download:
    """One download, as a small state machine over attempts (kept out of the function for readability)."""

    def __init__(self, source: Any, ref: TaskRef, task: ExportTask, directory: Path, *, filename: str | None,
                 progress: Callable[[DownloadProgress], None] | None, chunk_size: int, timeout: tuple[float, float],
                 session: requests.Session | None, sleep: Callable[[float], None]) -> None:
        self.source = source
        self.ref = ref
        self.task = task
        self.url = task.download_url or ""
        self.directory = directory
        name = filename or _file_name(ref.task_id, self.url)
        if os.sep in name or name in ("", ".", ".."):
            raise ConfigError(f"filename {filename!r} must be a plain file name")
        self.target = directory / name
        self.part = directory / f".{name}.part"
        self.notify = progress
        self.chunk_size = chunk_size
        self.timeout = timeout
        self.sleep = sleep
        self.session = session or _plain_session()
        self.state = DownloadProgress(ref.task_id, provider=ref.provider, path=self.target)
        self.etag: str | None = None
        self.where = redact_url(self.url) or "the download link"

    def already_there(self) -> DownloadResult | None:
        """The result of an earlier download of this export, when its file is whole under the final name.

        A file under the final name was renamed there only once complete, so its size against ``sizeMB`` is the
        check; without ``sizeMB`` (or with a ``.part`` beside it) the download runs again.
        """
        allowed = expected_size_range(self.task.size_mb)
        try:
            if allowed is None or self.part.exists() or not self.target.is_file():
                return None
            size = self.target.stat().st_size
        except OSError:
            return None  # a directory we cannot read: the download says so in its own words
        if not allowed[0] <= size <= allowed[1]:
            return None
        self.state.done = self.state.total = self.state.resumed_from = size
        self.state.finished = self.state.already = True
        self.state.ended = time.monotonic()
        if self.notify is not None:
            self.notify(self.state)
        return DownloadResult(self.ref.task_id, self.where, path=self.target, size=size, progress=self.state,
                              already=True)

    # -- the loop ---------------------------------------------------------------------------------------

    def run(self) -> DownloadResult:
        self._prepare_directory()
        offset = self.part.stat().st_size if self.part.exists() else 0
        self.state.done = self.state.resumed_from = offset
        failures = 0
        while True:
            self.state.attempts += 1
            before = self.state.done
            outcome = self._attempt()
            if outcome == "complete":
                break
            moved = self.state.done > before
            failures = 0 if moved else failures + 1
            if outcome == "refresh":
                self._refresh()
                continue
            if failures >= MAX_FAILED_ATTEMPTS:
                kept = f"; {self.state.done:,} bytes kept in {self.part} for the next try" if self.state.done else ""
                raise DownloadError(f"download of {self.ref.task_id} from {self.where} failed {failures} times in a "
                                    f"row ({self._last_problem}){kept}")
            if not moved:
                self.sleep(max(min(_BACKOFF_CAP, 0.25 * 2 ** failures), min(self._retry_after or 0.0, 60.0)))
                self._retry_after = None
        return self._finish()

    _last_problem = "no answer"
    #: The server's Retry-After on its last 429/5xx (honoured up to a minute).
    _retry_after: float | None = None

    def _attempt(self) -> str:
        """One GET from the current offset: ``complete``, ``retry`` or ``refresh``."""
        offset = self.state.done
        headers = {"Accept-Encoding": "identity"}  # byte offsets must count stored bytes
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.etag:
                headers["If-Range"] = self.etag
        problem: str | None = None
        try:
            with self.session.get(self.url, headers=headers, stream=True, timeout=self.timeout,
                                  allow_redirects=True) as response:
                verdict = self._judge(response, offset)
                if verdict != "stream":
                    return verdict
                self._stream(response)
        except requests.RequestException as exc:
            problem = _http._reason(exc)
        if problem is not None:  # outside the except block: no exception chain can carry the URL
            self._last_problem = redact_text(problem)
            return "retry"
        if self.state.total is not None and self.state.done >= self.state.total:
            return "complete"
        self._last_problem = "the connection closed early"
        return "retry"

    def _judge(self, response: requests.Response, offset: int) -> str:
        """Read the status and headers: ``stream`` to go on, else what to do."""
        status = response.status_code
        if status in (401, 403):
            self._last_problem = f"HTTP {status} {_bos_code(response)}".strip()
            return "refresh"
        if status == 416:
            total = _content_range_total(response.headers.get("Content-Range"))
            if total is not None and offset >= total:
                self.state.total = total
                self.state.done = offset
                return "complete"
            self._restart("the server refused the resume range")
            return "retry"
        if status >= 500 or status in (408, 429):
            self._last_problem = f"HTTP {status} {_bos_code(response)}".strip()
            self._retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return "retry"
        if status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset or total is None:
                self._restart("the server resumed at another byte")
                return "retry"
            self.state.total = total
        elif status == 200:
            if offset:
                self._restart("")  # the server sent the whole file again: start over from its first byte
            length = response.headers.get("Content-Length")
            self.state.total = int(length) if length and length.isdigit() else None
        else:
            raise DownloadError(f"download of {self.ref.task_id} from {self.where} failed: HTTP {status} "
                                f"{_bos_code(response)}".strip())
        self.etag = response.headers.get("ETag") or self.etag
        self._check_space()
        return "stream"

    def _stream(self, response: requests.Response) -> None:
        mode = "ab" if self.state.done else "wb"
        try:
            with open(self.part, mode) as out:
                for chunk in response.iter_content(self.chunk_size):
                    if not chunk:
                        continue
                    out.write(chunk)
                    self.state.done += len(chunk)
                    if self.notify is not None:
                        self.notify(self.state)
                out.flush()
                os.fsync(out.fileno())  # durable before the rename: a file under the final name is whole
        except requests.RequestException:
            raise  # a network failure (requests' errors are OSErrors too): the attempt resumes
        except OSError as exc:
            failure = self._disk_error(exc)
        else:
            return
        raise failure

    # -- helpers ----------------------------------------------------------------------------------------

    def _prepare_directory(self) -> None:
        error: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            probe = self.directory / f".{self.target.name}.probe"
            with open(probe, "wb"):
                pass
            probe.unlink()
        except OSError as exc:
            error = self._directory_problem(exc)
        if error:
            raise DownloadError(error)

    def _directory_problem(self, exc: OSError) -> str:
        if exc.errno in _READ_ONLY:
            return (f"cannot write to {self.directory} (read-only or no permission): choose another directory "
                    "or fix its permissions")
        if exc.errno in _NO_SPACE:
            return f"no space left in {self.directory}: free some space or choose another directory"
        return f"cannot use {self.directory} for the download: {exc.strerror or exc}"

    def _check_space(self) -> None:
        if self.state.total is None:
            return
        needed = self.state.total - self.state.done
        free = shutil.disk_usage(self.directory).free
        if needed > free:
            self.part.unlink(missing_ok=True)
            raise DownloadError(f"not enough space in {self.directory}: the export needs {needed / MIB:,.1f} MiB "
                                f"more, {free / MIB:,.1f} MiB are free; free some space or choose another directory")

    def _disk_error(self, exc: OSError) -> DownloadError:
        self.part.unlink(missing_ok=True)  # a partial file that cannot grow is only in the way
        if exc.errno in _NO_SPACE:
            return DownloadError(f"disk full while writing {self.part.name} in {self.directory} after "
                                 f"{self.state.done / MIB:,.1f} MiB (of {(self.state.total or 0) / MIB:,.1f}): free "
                                 "some space or choose another directory; nothing was left under the final name")
        return DownloadError(self._directory_problem(exc))

    def _restart(self, why: str) -> None:
        if why:
            self._last_problem = why
        self.part.unlink(missing_ok=True)
        self.state.done = self.state.resumed_from = 0
        self.etag = None

    def _refresh(self) -> None:
        if self.state.refreshes >= MAX_REFRESHES:
            raise DownloadError(f"the download link of {self.ref.task_id} was rejected {self.state.refreshes + 1} "
                                f"times ({self._last_problem}) even after fetching the task again: check the "
                                "export in the console")
        self.state.refreshes += 1
        task = self.source.fetch(self.ref)
        if not task.download_url:
            raise DownloadError(f"export {self.ref.task_id} no longer has a download link ({task.state.value})")
        self.task, self.url = task, task.download_url

    def _finish(self) -> DownloadResult:
        size = self.part.stat().st_size
        total = self.state.total
        if total is not None and size != total:
            self.part.unlink(missing_ok=True)
            raise DownloadError(f"download of {self.ref.task_id} ended with {size:,} bytes, the server announced "
                                f"{total:,}; download again")
        allowed = expected_size_range(self.task.size_mb)
        if allowed is not None and not allowed[0] <= size <= allowed[1]:
            self.part.unlink(missing_ok=True)
            raise DownloadError(f"download of {self.ref.task_id} has {size / MIB:,.3f} MiB but the task says sizeMB "
                                f"{self.task.size_mb}: the file is not the export; download again")
        os.replace(self.part, self.target)
        self.state.finished = True
        self.state.ended = time.monotonic()
        if self.notify is not None:
            self.notify(self.state)
        return DownloadResult(self.ref.task_id, self.where, path=self.target, size=size, progress=self.state)


def _plain_session() -> requests.Session:
    """A session without the clients' signing auth or JSON headers: the URL is already signed."""
    install_log_filter()  # urllib3 logs each request line, signed query included, at DEBUG
    session = requests.Session()
    session.trust_env = False
    session.headers.update({"User-Agent": _http.USER_AGENT})
    return session


_CONTENT_RANGE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*")


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    match = _CONTENT_RANGE.fullmatch(header or "")
    if not match:
        return None, None
    return int(match[1]), int(match[3]) if match[3] != "*" else None


def _content_range_total(header: str | None) -> int | None:
    match = re.fullmatch(r"\s*bytes\s+\*/(\d+)\s*", header or "")
    return int(match[1]) if match else None


def _bos_code(response: requests.Response) -> str:
    """The BOS error code of an error answer (a short JSON body), never its text at length."""
    try:
        body = json.loads(response.content[:4096] or b"null")
    except ValueError:
        return ""
    code = body.get("code") if isinstance(body, dict) else None
    return redact_text(str(code))[:60] if code else ""
