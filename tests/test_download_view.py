"""The notebook card of a download: one badge per phase, the bar, percent and sizes, and never the signed URL."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from export_widgets.download import MIB, DownloadError, DownloadProgress
from export_widgets.downloadview import DownloadCardView, DownloadPhase, download_bundle, download_card_html

SIGNED = ("http://127.0.0.1:8123/bos/ew-bucket/exports/task-1-export.zip?authorization=bce-auth-v1%2F"
          "0123456789abcdef0123%2F2024-05-01T00%3A00%3A00Z%2F1800%2Fhost%2Fdeadbeefdeadbeefdeadbeef")


def _progress(done: int, total: int | None = 50 * MIB, **fields: object) -> DownloadProgress:
    # started/ended fixed: rate and ETA are exact (21 MiB in 1.7 s -> 12.4 MiB/s, ETA 2s)
    return DownloadProgress("task-1", provider="qianfan", total=total, done=done, started=100.0,
                            ended=fields.pop("ended", 101.7), **fields)  # type: ignore[arg-type]


def _text(markup: str) -> str:
    """The visible text of the card (tags and the stylesheet removed)."""
    markup = re.sub(r"<style>.*?</style>", "", markup, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def _attr(markup: str, name: str) -> list[str]:
    return re.findall(rf'{name}="([^"]*)"', markup)


def test_downloading_card_has_badge_bar_percent_sizes_rate_and_eta():
    progress = _progress(21 * MIB)
    markup = download_card_html(progress)
    assert _attr(markup, "data-download-state") == ["downloading"]
    assert _attr(markup, "data-progress") == ["42.0"]
    text = _text(markup)
    assert text.startswith("DOWNLOADING Qianfan task-1 42.0% 21.0 / 50.0 MiB · 12.4 MiB/s · ETA 2s"), text
    assert "→" not in text  # no file yet
    # the colours are the watch's: RUNNING's tint on the badge and the bar, theme variables with fallbacks
    assert 'style="--ew-c:var(--jp-brand-color1, #1976d2)"' in markup
    assert "color:var(--jp-ui-font-color" in markup  # text keeps the theme's font colour


def test_downloaded_card_is_full_green_with_the_time_and_the_file():
    progress = _progress(50 * MIB, finished=True, ended=104.0, path=Path("data/task-1-export.zip"))
    markup = download_card_html(progress)
    assert _attr(markup, "data-download-state") == ["downloaded"]
    assert _attr(markup, "data-progress") == ["100.0"]
    assert 'data-display-state="succeeded"' in markup and "--jp-success-color1" in markup
    text = _text(markup)
    assert text == "DOWNLOADED Qianfan task-1 100.0% 50.0 / 50.0 MiB · 12.5 MiB/s · done in 4s → " \
                   "data/task-1-export.zip", text


def test_a_download_without_a_length_ends_full():
    markup = download_card_html(_progress(3 * MIB, total=None, finished=True, path=Path("x.zip")))
    assert _attr(markup, "data-progress") == ["100.0"] and "3.0 MiB" in _text(markup)
    running = download_card_html(_progress(3 * MIB, total=None))
    assert _attr(running, "data-progress") == ["0.0"] and "DOWNLOADING Qianfan task-1 – 3.0 MiB" in _text(running)


def test_failed_card_keeps_the_bar_reached_and_says_why_without_an_eta():
    reason = "download of task-1 from 127.0.0.1:8123/bos/ew-bucket/exports/task-1-export.zip?*** failed 6 times"
    markup = download_card_html(_progress(21 * MIB, attempts=7, ended=None), reason)
    assert _attr(markup, "data-download-state") == ["failed"]
    assert _attr(markup, "data-progress") == ["42.0"]
    assert 'data-display-state="failed"' in markup and "--jp-error-color1" in markup
    text = _text(markup)
    assert text.startswith("FAILED Qianfan task-1 42.0% 21.0 / 50.0 MiB") and "6 retries" in text, text
    assert "ETA" not in text and text.endswith(reason)


@pytest.mark.parametrize("phase", list(DownloadPhase))
def test_no_signed_url_or_query_in_either_mime_type(phase):
    progress = _progress(50 * MIB if phase is DownloadPhase.DOWNLOADED else 21 * MIB,
                         finished=phase is DownloadPhase.DOWNLOADED, path=Path("out/task-1-export.zip"))
    # a failure message that (wrongly) carried the URL is redacted on the way in
    error = f"download failed from {SIGNED}" if phase is DownloadPhase.FAILED else None
    bundle = download_bundle(progress, error)
    assert set(bundle) == {"text/plain", "text/html"}
    query = SIGNED.split("?", 1)[1]
    for mime, data in bundle.items():
        for secret in (query, "authorization=", "bce-auth-v1", "deadbeefdeadbeef", "0123456789abcdef0123"):
            assert secret not in data and secret not in html.unescape(data), (mime, secret)
    assert bundle["text/plain"].startswith("Qianfan task-1 download")
    if phase is DownloadPhase.FAILED:
        assert "FAILED: download failed from" in bundle["text/plain"] and "?***" in bundle["text/plain"]


def test_text_plain_is_the_progress_line():
    progress = _progress(21 * MIB)
    assert download_bundle(progress)["text/plain"] == progress.line()
    assert set(download_bundle(progress, html=False)) == {"text/plain"}


def test_the_view_draws_at_once_then_at_most_every_half_second_and_always_the_end(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("export_widgets.downloadview.time.monotonic", lambda: clock[0])
    published: list[dict[str, str]] = []

    class Handle:
        def update(self, bundle: dict[str, str], raw: bool = False) -> None:
            assert raw
            published.append(bundle)

    def display(bundle: dict[str, str], raw: bool = False, display_id: bool = False) -> Handle:
        assert raw and display_id
        published.append(bundle)
        return Handle()

    view = DownloadCardView("task-1", "qianfan", display=display)
    assert len(published) == 1 and 'data-download-state="downloading"' in published[0]["text/html"]
    progress = _progress(0, ended=None)
    for _ in range(50):  # 50 chunks over 2.5 s
        clock[0] += 0.05
        progress.done += MIB
        view(progress)
    assert 4 <= view.updates <= 5, view.updates  # <= 2/s
    progress.finished = True
    view(progress)
    assert 'data-download-state="downloaded"' in published[-1]["text/html"]
    view.fail(DownloadError("too late"))  # the end is drawn once; nothing after it
    view(progress)
    assert 'data-download-state="downloaded"' in published[-1]["text/html"]


def test_the_view_shows_a_failure_once_with_its_reason():
    published: list[dict[str, str]] = []

    class Handle:
        def update(self, bundle: dict[str, str], raw: bool = False) -> None:
            published.append(bundle)

    view = DownloadCardView("task-1", "qianfan", display=lambda *a, **k: Handle())
    view.fail(DownloadError("export task-1 is RUNNING, not SUCCEEDED: wait for it to finish"))
    assert len(published) == 1
    assert "FAILED" in _text(published[0]["text/html"]) and "is RUNNING, not SUCCEEDED" in published[0]["text/plain"]
    view.fail(KeyboardInterrupt())
    assert len(published) == 1
