"""Webhook notifications against a real loopback HTTP receiver: every format, and hostile webhooks.

The receiver is ``http.server`` on 127.0.0.1. A hanging webhook blocks in its handler until the test releases it
(bounded), so "send returns at once" is shown by causality: the call came back while the webhook had not answered.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from export_widgets.models import ExportTask, TaskState
from export_widgets.monitor import ExportMonitor
from export_widgets.notify import (
    FORMATS,
    Notification,
    Notifier,
    format_for,
    payload,
    webhook_host,
)
from export_widgets.redact import register_secret
from export_widgets.simulator import TaskSpec

TOKEN = "0f3c9a7e-feed-4bad-a11c-5ecre7t0ken1"
FAST = {"timeout": 0.5, "retries": 2, "backoff": 0.01}


class Receiver:
    """A loopback webhook: records every POST and answers as ``mode`` says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.answer: dict = {}
        self.fail_first = 0
        self.requests: list[dict] = []
        self.answered = 0
        self.release = threading.Event()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    receiver.requests.append({"path": self.path, "body": json.loads(body),
                                              "content_type": self.headers.get("Content-Type")})
                    count = len(receiver.requests)
                    receiver.arrived.notify_all()
                if receiver.mode == "hang":
                    receiver.release.wait(30)  # bounded: the test releases it
                    return
                status = 200
                if receiver.mode == "500" or count <= receiver.fail_first:
                    status = 500
                elif receiver.mode == "404":
                    status = 404
                data = json.dumps(receiver.answer if status == 200 else {"error": "nope"}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                receiver.answered += 1

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = f"/robot/send?access_token={TOKEN}") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, n: int, timeout: float = 30) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= n, timeout)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "export_widgets.notify" and r.levelno >= logging.WARNING]


ENDED = Notification(event="ended", provider="modelarts", task_id="T1", state="SUCCEEDED", status="finished",
                     duration_s=723.0, progress=100.0, finished_samples=1000, total_samples=1000)


# -- formats ------------------------------------------------------------------------------------------------------

def test_format_is_chosen_by_host_or_name():
    assert format_for("https://open.feishu.cn/open-apis/bot/v2/hook/x") == "feishu"
    assert format_for("https://open.larksuite.com/open-apis/bot/v2/hook/x") == "feishu"
    assert format_for("https://oapi.dingtalk.com/robot/send?access_token=x") == "dingtalk"
    assert format_for("https://hooks.slack.com/services/T0/B0/x") == "slack"
    assert format_for("https://example.com/hook") == "json"
    assert format_for("https://example.com/hook", "Lark") == "feishu"
    assert format_for("https://oapi.dingtalk.com/robot/send", "json") == "json"  # explicit wins
    with pytest.raises(ValueError, match="one of feishu, dingtalk, slack, json"):
        format_for("https://example.com/hook", "teams")
    with pytest.raises(ValueError, match="http") as info:
        format_for(f"ftp://example.com/{TOKEN}")
    assert TOKEN not in str(info.value)
    assert webhook_host(f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}") == "oapi.dingtalk.com"
    assert webhook_host("http://127.0.0.1:8080/x") == "127.0.0.1:8080"


def test_message_text_and_payloads():
    text = ENDED.text()
    assert text == "[export_widgets] ModelArts export T1 SUCCEEDED after 12m 3s · 100%, 1,000/1,000 samples"
    assert payload(ENDED, "feishu") == {"msg_type": "text", "content": {"text": text}}
    assert payload(ENDED, "dingtalk") == {"msgtype": "text", "text": {"content": text}}
    assert payload(ENDED, "slack") == {"text": text}
    plain = payload(ENDED, "json")
    assert plain["text"] == text and plain["state"] == "SUCCEEDED" and plain["finished_samples"] == 1000
    failed = Notification(event="ended", provider="qianfan", task_id="T2", state="FAILED", status="finished",
                          duration_s=7300, finished_samples=42, total_samples=100, error="E1: disk quota")
    assert failed.text("[ew]") == "[ew] Qianfan export T2 FAILED after 2h 1m · 42/100 samples · error: E1: disk quota"
    timed_out = Notification(event="ended", provider="qianfan", task_id="T3", state="RUNNING", status="timed_out",
                             duration_s=60, progress=42.0)
    assert "the watch timed out after 1m 0s · last state RUNNING 42%" in timed_out.text()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reaches_the_webhook(receiver, fmt, caplog):
    receiver.answer = {"errcode": 0, "errmsg": "ok"} if fmt == "dingtalk" else {"code": 0, "msg": "success"}
    notifier = Notifier(receiver.url(), fmt, **FAST)
    assert notifier.send(ENDED) is True
    assert notifier.flush(timeout=30)
    assert len(receiver.requests) == 1 and notifier.stats.delivered == 1
    request = receiver.requests[0]
    assert request["body"] == payload(ENDED, fmt) and request["path"] == f"/robot/send?access_token={TOKEN}"
    assert request["content_type"].startswith("application/json")
    assert _warnings(caplog) == []


# -- hostile webhooks ----------------------------------------------------------------------------------------------

def test_a_hanging_webhook_delays_nothing_then_one_warning(receiver, caplog):
    receiver.mode = "hang"
    notifier = Notifier(receiver.url(), "dingtalk", **FAST)
    assert notifier.send(ENDED) is True  # returned ...
    assert receiver.wait_for(1)
    assert receiver.answered == 0  # ... while the webhook has not answered
    assert notifier.flush(timeout=60)
    assert len(receiver.requests) == 3 and notifier.stats.attempts == 3 and notifier.stats.dropped == 1
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    assert "127.0.0.1" in warnings[0] and "no answer within 0.5 s" in warnings[0] and "3 attempts" in warnings[0]
    assert TOKEN not in caplog.text and "access_token" not in caplog.text


def test_a_refusing_webhook_is_retried_then_dropped(caplog):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    notifier = Notifier(f"http://127.0.0.1:{port}/open-apis/bot/v2/hook/{TOKEN}", "feishu", **FAST)
    assert notifier.send(ENDED)
    assert notifier.flush(timeout=60)
    assert notifier.stats.attempts == 3 and notifier.stats.dropped == 1 and notifier.stats.delivered == 0
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "connection refused" in warnings[0]
    assert TOKEN not in caplog.text and TOKEN not in repr(notifier)


def test_a_500_is_retried_then_dropped_and_a_flaky_one_gets_through(receiver, caplog):
    receiver.mode = "500"
    notifier = Notifier(receiver.url(), "slack", **FAST)
    notifier.send(ENDED)
    assert notifier.flush(timeout=60)
    assert len(receiver.requests) == 3 and notifier.stats.dropped == 1
    assert len(_warnings(caplog)) == 1 and "HTTP 500" in _warnings(caplog)[0]

    caplog.clear()
    receiver.mode, receiver.fail_first = "ok", 3 + 2  # the next message fails twice, then goes through
    notifier.send(ENDED)
    assert notifier.flush(timeout=60)
    assert len(receiver.requests) == 6 and notifier.stats.delivered == 1 and _warnings(caplog) == []


def test_a_rejection_is_not_retried(receiver, caplog):
    receiver.mode = "404"
    notifier = Notifier(receiver.url(), "slack", **FAST)
    notifier.send(ENDED)
    assert notifier.flush(timeout=60)
    assert len(receiver.requests) == 1 and "HTTP 404" in _warnings(caplog)[0]

    caplog.clear()
    receiver.mode = "ok"
    receiver.answer = {"errcode": 310000, "errmsg": f"keywords not in content, token {TOKEN}"}
    dingtalk = Notifier(receiver.url(), "dingtalk", **FAST)
    dingtalk.send(ENDED)
    assert dingtalk.flush(timeout=60)
    assert len(receiver.requests) == 2
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "DingTalk errcode 310000: keywords not in content" in warnings[0]
    assert TOKEN not in caplog.text


def test_nothing_secret_goes_into_the_message(receiver):
    register_secret("AKNOTIFYNEVER0123456789")
    notifier = Notifier(receiver.url(), "json", **FAST)
    notifier.send(Notification(event="ended", provider="qianfan", task_id="T1", state="FAILED", status="finished",
                               error="denied AKNOTIFYNEVER0123456789 https://b.bcebos.com/x?authorization=sig123"))
    assert notifier.flush(timeout=30)
    sent = json.dumps(receiver.requests[0]["body"])
    assert "denied" in sent and "AKNOTIFYNEVER" not in sent and "sig123" not in sent


# -- with real monitors -----------------------------------------------------------------------------------------

def _monitor(sim, task_id, **kw):
    return ExportMonitor(sim.qianfan_client(), task_id, start=False, clock=sim.clock.now, rng=random.Random(0), **kw)


def test_a_monitor_notifies_once_when_it_ends_even_if_the_webhook_hangs(empty_sim, receiver):
    empty_sim.add_task(TaskSpec("qianfan", "T1", duration=10, total_samples=1000))
    receiver.mode = "hang"
    notifier = Notifier(receiver.url(), "feishu", **FAST)
    monitor = _monitor(empty_sim, "T1")
    notifier.watch(monitor)
    for _ in range(100):
        if monitor.poll_once() is None:
            break
        empty_sim.clock.advance(1.0)
    assert monitor.done and receiver.answered == 0  # the last poll returned though the webhook never answered
    monitor.stop()  # a second end is not a second message
    receiver.release.set()
    assert notifier.flush(timeout=60)
    texts = {r["body"]["content"]["text"] for r in receiver.requests}
    assert len(texts) == 1  # one message (sent up to three times, as the webhook hung)
    assert texts.pop().startswith("[export_widgets] Qianfan export T1 SUCCEEDED after 10s · 100%, 1,000/1,000")


def test_a_stall_is_notified_once_and_then_the_end(empty_sim, receiver):
    empty_sim.add_task(TaskSpec("qianfan", "T1", duration=100, outcome="stall", stall_at=30, total_samples=100))
    receiver.answer = {"ok": True}
    notifier = Notifier(receiver.url(), "json", **FAST)
    monitor = _monitor(empty_sim, "T1", stall_after=60)
    notifier.watch(monitor, stalled=True)
    for _ in range(100):
        monitor.poll_once()
        empty_sim.clock.advance(5.0)
    monitor.stop()
    assert notifier.flush(timeout=60)
    events = [r["body"]["event"] for r in receiver.requests]
    assert events == ["stalled", "ended"]
    stalled, ended = (r["body"] for r in receiver.requests)
    assert stalled["state"] == "RUNNING" and stalled["unchanged_for_s"] >= 60 and "has not moved" in stalled["text"]
    assert ended["status"] == "stopped" and "the watch was stopped" in ended["text"]


def test_a_dashboard_notifies_once_when_all_have_ended(empty_sim, receiver):
    empty_sim.add_task(TaskSpec("qianfan", "A", duration=5, total_samples=10))
    empty_sim.add_task(TaskSpec("qianfan", "B", duration=20, outcome="fail", fail_at=50, total_samples=10))
    notifier = Notifier(receiver.url(), "slack", **FAST)
    monitors = [_monitor(empty_sim, "A"), _monitor(empty_sim, "B")]
    notifier.watch_group(monitors)
    for _ in range(100):
        for monitor in monitors:
            monitor.poll_once()
        if all(m.done for m in monitors):
            break
        empty_sim.clock.advance(1.0)
    assert notifier.flush(timeout=60)
    assert len(receiver.requests) == 1
    text = receiver.requests[0]["body"]["text"]
    assert text.startswith("[export_widgets] all 2 exports ended: 1 FAILED, 1 SUCCEEDED")
    assert "\n- Qianfan export A SUCCEEDED" in text and "\n- Qianfan export B FAILED" in text


def test_notification_for_a_task_error_carries_it():
    class Stub:
        provider, task_id, status, last_poll_error, error, started_at, stall_after = \
            "modelarts", "T9", "finished", None, None, 0.0, 300.0
        latest = ExportTask("modelarts", "T9", TaskState.FAILED, progress=60.0, error_code="ModelArts.4352",
                            error_message="export failed https://obs.example.com/x?AccessKeyId=AKIDEXAMPLE")

        def figures(self):
            from export_widgets.figures import Figures

            return Figures(elapsed_s=90.0)

    from export_widgets.notify import notification_for

    note = notification_for(Stub())
    assert note.error == "ModelArts.4352: export failed https://obs.example.com/x?***"
    assert note.text().endswith("FAILED after 1m 30s · 60% · error: ModelArts.4352: export failed "
                                "https://obs.example.com/x?***")


def test_signed_robots_carry_a_valid_signature(receiver):
    import base64
    import hashlib
    import hmac
    from urllib.parse import parse_qs, urlsplit

    secret = "SECd0d1e4f2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3"
    receiver.answer = {"errcode": 0, "code": 0}
    Notifier(receiver.url(), "dingtalk", secret=secret, **FAST).send(ENDED)
    Notifier(receiver.url("/open-apis/bot/v2/hook/" + TOKEN), "feishu", secret=secret, **FAST).send(ENDED)
    assert Notifier(receiver.url(), "json", **FAST).flush(timeout=60)
    ding, feishu = receiver.requests
    query = parse_qs(urlsplit(ding["path"]).query)
    assert query["access_token"] == [TOKEN]
    stamp = query["timestamp"][0]
    expected = hmac.new(secret.encode(), f"{stamp}\n{secret}".encode(), hashlib.sha256).digest()
    assert base64.b64decode(query["sign"][0]) == expected
    assert ding["body"] == payload(ENDED, "dingtalk")
    body = dict(feishu["body"])
    stamp, sign = body.pop("timestamp"), body.pop("sign")
    assert base64.b64decode(sign) == hmac.new(f"{stamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    assert body == payload(ENDED, "feishu")
    with pytest.raises(ValueError, match="DingTalk and Feishu"):
        Notifier(receiver.url(), "slack", secret=secret)
