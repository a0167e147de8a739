"""A download's progress in a notebook: the watch card's look (badge, bar, percent, stats) for bytes.

``%export_status --download`` publishes one output through a display handle and updates it in place, with
``text/html`` (the card) and ``text/plain`` (:meth:`DownloadProgress.line`), so a saved notebook, nbviewer or a
text-only frontend all show the last state. It is plain HTML: no widget comm, nothing to reconnect.

The card names the file it writes, never the signed download link (its query is a bearer secret).
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from typing import Any

from .display import DisplayState
from .download import DownloadProgress
from .providers import provider_label
from .redact import one_line, redact_text
from .render import badge_html, bar_html, esc, style_tag

__all__ = ["DownloadCardView", "DownloadPhase", "download_bundle", "download_card_html", "download_text"]


class DownloadPhase(str, enum.Enum):
    """Where a download is, as its badge says it."""

    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    FAILED = "failed"

    @property
    def label(self) -> str:
        """The badge text."""
        return self.value.upper()

    @property
    def display_state(self) -> DisplayState:
        """The watch state whose colour the badge and bar take (so a download looks like a watch)."""
        return _COLOUR_OF[self]


_COLOUR_OF = {DownloadPhase.DOWNLOADING: DisplayState.RUNNING, DownloadPhase.DOWNLOADED: DisplayState.SUCCEEDED,
              DownloadPhase.FAILED: DisplayState.FAILED}

#: Only what the watch's stylesheet lacks: a path or a reason with no spaces must wrap, not run out of the output.
_EXTRA_CSS = (".ew-download .ew-dl-path{min-width:0;overflow-wrap:anywhere}"
              ".ew-download .ew-dl-path code{font-family:var(--jp-code-font-family,SFMono-Regular,Menlo,Consolas,"
              "monospace);font-size:12px}"
              ".ew-download .ew-why{overflow-wrap:anywhere}")


def _phase(progress: DownloadProgress, error: str | None) -> DownloadPhase:
    if error is not None:
        return DownloadPhase.FAILED
    return DownloadPhase.DOWNLOADED if progress.finished else DownloadPhase.DOWNLOADING


def _stats(progress: DownloadProgress, phase: DownloadPhase) -> list[str]:
    parts = progress.stats()
    if phase is DownloadPhase.FAILED:  # no ETA for a download that stopped
        parts = [p for p in parts if not p.startswith("ETA ")]
    return parts


def download_card_html(progress: DownloadProgress, error: str | None = None) -> str:
    """The card of ``progress``: badge (DOWNLOADING, DOWNLOADED or FAILED), provider and id, bar with percent,
    size, rate, ETA (or the time it took), the file once it is there, and ``error`` (one line) below on failure.

    Everything shown is escaped and redacted; the download URL is not part of ``progress`` and never shown.
    """
    phase = _phase(progress, error)
    state = phase.display_state
    percent = progress.percent
    if phase is DownloadPhase.DOWNLOADED and percent is None:
        percent = 100.0  # no announced length: a finished download is whole all the same
    stats = '<span class="ew-sep">·</span>'.join(esc(part) for part in _stats(progress, phase))
    where = ""
    if phase is DownloadPhase.DOWNLOADED and progress.path is not None:
        where = f'<span class="ew-dl-path">→ <code class="ew-dl-file">{esc(progress.path)}</code></span>'
    why = f'<div class="ew-line ew-why">{esc(error)}</div>' if error else ""
    return (f'{style_tag()}<style>{_EXTRA_CSS}</style>'
            f'<div class="ew-card ew-download" data-download-state="{phase.value}" '
            f'data-task-id="{esc(progress.task_id)}"><div class="ew-line">{badge_html(state, phase.label)}'
            f'<span class="ew-who">{esc(provider_label(progress.provider))} '
            f'<code class="ew-id ew-task-id" title="{esc(progress.task_id)}">{esc(progress.task_id)}</code></span>'
            f'<span class="ew-meter">{bar_html(percent, state)}'
            f'<span class="ew-pct">{esc(f"{percent:.1f}%" if percent is not None else "–")}</span></span>'
            f'<span class="ew-stats">{stats}</span>{where}</div>{why}</div>')


def download_text(progress: DownloadProgress, error: str | None = None) -> str:
    """The text twin of :func:`download_card_html`: the progress line, and ``FAILED: reason`` on failure."""
    line = progress.line()
    return redact_text(f"{line} FAILED: {error}" if error else line)


def download_bundle(progress: DownloadProgress, error: str | None = None, *,
                    html: bool = True) -> dict[str, str]:
    """The display data of one update: ``text/plain`` always, ``text/html`` (the card) unless ``html`` is False."""
    bundle = {"text/plain": download_text(progress, error)}
    if html:
        bundle["text/html"] = download_card_html(progress, error)
    return bundle


class DownloadCardView:
    """A notebook output that follows a download: pass it as ``download_export(progress=...)``.

    It displays the card at once (DOWNLOADING, nothing yet), then updates the same output at most once per
    ``every`` seconds, and always with the last state: DOWNLOADED with the file, or FAILED with the reason
    (:meth:`fail`). ``html=False`` publishes the text line only (``--no-widget``).
    """

    def __init__(self, task_id: str, provider: str = "", *, every: float = 0.5, html: bool = True,
                 display: Callable[..., Any] | None = None) -> None:
        from IPython.display import display as ipython_display

        show: Callable[..., Any] = display if display is not None else ipython_display
        self.every = every
        self.html = html
        self.updates = 0  # display updates after the first draw (the tests count them)
        self.progress = DownloadProgress(task_id, provider=provider)
        self._lock = threading.Lock()
        self._last = time.monotonic()  # the first update after `every` s: the first chunk's rate says little
        self._ended = False
        self._handle = show(download_bundle(self.progress, html=html), raw=True, display_id=True)

    def __call__(self, progress: DownloadProgress) -> None:
        """Take a progress report (after each chunk); redraw if ``every`` s passed, or if it is the last."""
        now = time.monotonic()
        with self._lock:
            self.progress = progress
            if self._ended or not (progress.finished or now - self._last >= self.every):
                return
            self._last = now
            self._ended = progress.finished
            self._update(download_bundle(progress, html=self.html))

    def fail(self, error: BaseException | str) -> None:
        """Show FAILED with the one-line reason, keeping the bytes and bar reached (the caller raises after)."""
        if isinstance(error, KeyboardInterrupt):
            reason = "interrupted: run the cell again to resume from the bytes kept"
        else:
            reason = error if isinstance(error, str) else one_line(error)
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._update(download_bundle(self.progress, redact_text(reason), html=self.html))

    def _update(self, bundle: dict[str, str]) -> None:
        self.updates += 1
        self._handle.update(bundle, raw=True)
