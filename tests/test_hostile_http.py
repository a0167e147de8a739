"""The shared HTTP layer against hostile servers (issue 12): redirects, one deadline per request, a bound on the
answer's size after decompression, malformed HTTP, and errors that never carry a secret.

The servers are raw sockets on 127.0.0.1 (``tests/hostile.py``), bounded in connections and lifetime. No timed
assertions: a deadline is checked against a server that would otherwise hold the request for a minute.
"""

from __future__ import annotations

import gzip
import json
import time
import traceback
import tracemalloc
import zlib

import pytest
from hostile import RawServer, answer, trickling_server

from export_widgets import ModelArtsClient, QianfanClient
from export_widgets._http import DEFAULT_MAX_RESPONSE_BYTES, RedactedCause
from export_widgets.errors import APIError, ExportWidgetsError, ResponseFormatError, TransportError
from export_widgets.monitor import _outcome_of

TOKEN = "MIIhostile-iam-token-" + "x" * 40
AK, SK = "HOSTILEAKEXAMPLE0001", "hostile-secret-key-" + "s" * 20
TASK = {"task_id": "T1", "status": "RUNNING", "progress": 40.0}


def modelarts(url: str, **kwargs) -> ModelArtsClient:
    kwargs.setdefault("token", TOKEN)
    return ModelArtsClient(project_id="p1", endpoint=url, environ={}, **kwargs)


def poll(client) -> object:
    if isinstance(client, QianfanClient):
        return client.get_export_task("task-1")
    return client.get_export_task("DS1", "T1")


def assert_no_secret(error: BaseException, *secrets: str) -> None:
    text = "".join(traceback.format_exception(error))
    for secret in (TOKEN, AK, SK, *secrets):
        assert secret not in text, (secret, text)


# -- redirects ------------------------------------------------------------------------------------------------

def test_a_redirect_to_another_host_is_an_api_error_and_carries_no_token():
    with RawServer(answer("200 OK", b"{}")) as elsewhere:
        target = elsewhere.url.replace("127.0.0.1", "localhost") + "/steal?X-Amz-Signature=s3cr3t"
        with RawServer(answer("302 Found", b"", f"Location: {target}")) as server:
            with pytest.raises(APIError) as info:
                poll(modelarts(server.url))
            assert len(server.requests) == 1
        assert elsewhere.requests == []  # never followed: X-Auth-Token stays with the endpoint's host
    error = info.value
    assert error.http_status == 302 and not error.transient
    assert "localhost" in str(error) and "s3cr3t" not in str(error)
    assert _outcome_of(error)[1]  # permanent: the endpoint is wrong, retrying will not help
    assert_no_secret(error, "s3cr3t")


def test_a_redirect_loop_costs_one_request_per_poll():
    def loop(sock, _request):
        sock.sendall(answer("301 Moved Permanently", b"", "Location: /v2/p1/datasets/DS1/export-tasks/T1"))

    with RawServer(loop) as server:
        client = modelarts(server.url)
        for _ in range(3):
            with pytest.raises(APIError):
                poll(client)
        requests_per_poll = len(server.requests) / 3
    assert requests_per_poll == 1  # requests alone followed 30 redirects: 31 requests a poll


# -- one deadline per request ---------------------------------------------------------------------------------

def test_a_trickling_body_is_cut_at_the_request_deadline():
    body = json.dumps(TASK).encode() + b" " * 10_000
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with trickling_server(body, 0.05, head=head) as server:
        client = modelarts(server.url, timeout=(2.0, 2.0), request_timeout=1.0)
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            poll(client)
        seen = time.monotonic() - started
    print(f"deadline 1.0 s, trickling body: the poll ended after {seen:.2f} s")
    assert seen < 20  # the server would trickle for 60 s (10,000 bytes at 20/s); each read alone is short
    assert "deadline" in str(info.value) and info.value.transient


def test_trickled_headers_and_endless_interim_answers_are_cut_too():
    endless = b"HTTP/1.1 100 Continue\r\n\r\n" * 10_000
    header = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"a" * 5_000 + b"\r\n\r\n{}"
    for data, every in ((endless, 0.002), (header, 0.01)):
        with trickling_server(data, every) as server:
            started = time.monotonic()
            with pytest.raises(TransportError, match="deadline"):
                poll(modelarts(server.url, timeout=(2.0, 2.0), request_timeout=0.5))
            assert time.monotonic() - started < 20  # the server would go on for 50 s


def test_the_old_timeout_argument_still_bounds_a_silent_server():
    def silent(sock, _request):
        time.sleep(3)

    with RawServer(silent) as server:
        with pytest.raises(TransportError, match="timed out"):
            poll(modelarts(server.url, timeout=0.3))


def test_connections_are_reused_after_a_complete_answer():
    with RawServer(answer("200 OK", json.dumps(TASK).encode())) as server:
        client = modelarts(server.url)
        for _ in range(5):
            assert poll(client).progress == 40.0
        assert len(server.requests) == 5 and len(server._workers) == 1  # one keep-alive connection


# -- size after decompression -------------------------------------------------------------------------------

def test_a_compression_bomb_is_refused_within_a_small_multiple_of_the_bound():
    inflated = 64 * 1024 * 1024
    bomb = gzip.compress(b"{" + b" " * inflated + b"}", compresslevel=9)
    assert len(bomb) < 200_000
    with RawServer(answer("200 OK", bomb, "Content-Encoding: gzip")) as server:
        client = modelarts(server.url)
        tracemalloc.start()
        try:
            with pytest.raises(ResponseFormatError, match="after decompression") as info:
                poll(client)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    print(f"compression bomb ({len(bomb):,} bytes -> {inflated:,}): peak {peak / 2**20:.1f} MiB traced "
          f"(bound {DEFAULT_MAX_RESPONSE_BYTES / 2**20:.0f} MiB)")
    assert peak < 3 * DEFAULT_MAX_RESPONSE_BYTES  # it used to inflate all 64 MiB
    assert not info.value.transient or _outcome_of(info.value)[0]  # a typed, classifiable error


@pytest.mark.parametrize("declared", [True, False])
def test_a_plain_answer_beyond_the_bound_is_refused(declared):
    body = b'{"pad": "' + b"x" * (DEFAULT_MAX_RESPONSE_BYTES + 10) + b'"}'
    if declared:
        data = answer("200 OK", body)
    else:  # no Content-Length: read until the server closes
        data = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body

    def respond(sock, _request):
        try:
            sock.sendall(data)
        except OSError:
            pass  # the client stopped reading: what we want
        sock.close()

    with RawServer(respond) as server:
        with pytest.raises(ResponseFormatError, match="larger than"):
            poll(modelarts(server.url))


def test_a_compressed_answer_within_the_bound_is_read():
    with RawServer(answer("200 OK", gzip.compress(json.dumps(TASK).encode()), "Content-Encoding: gzip")) as server:
        assert poll(modelarts(server.url)).progress == 40.0
    deflated = zlib.compress(json.dumps(TASK).encode())
    with RawServer(answer("200 OK", deflated, "Content-Encoding: deflate")) as server:
        assert poll(modelarts(server.url)).progress == 40.0


# -- malformed HTTP -----------------------------------------------------------------------------------------

_OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
MALFORMED = {
    "closed at once": b"",
    "not HTTP": b"hello there\r\n\r\n",
    "status not a number": b"HTTP/1.1 abc OK\r\n\r\n{}",
    "status below 100": b"HTTP/1.1 042 Odd\r\nContent-Length: 2\r\n\r\n{}",
    "status above 999": b"HTTP/1.1 1000 Odd\r\nContent-Length: 2\r\n\r\n{}",
    "unknown protocol": b"HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    "truncated status line": b"HTTP/1.1",
    "truncated headers": _OK_HEAD + b"Content-Length: 2\r\nX-Half",
    "truncated body": _OK_HEAD + b"Content-Length: 100\r\n\r\n{\"status\": ",
    "content-length not a number": _OK_HEAD + b"Content-Length: abc\r\n\r\n{}",
    "negative content-length": _OK_HEAD + b"Content-Length: -5\r\n\r\n{}",
    "conflicting content-lengths": _OK_HEAD + b"Content-Length: 2\r\nContent-Length: 7\r\n\r\n{}",
    "chunk size not hex": _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "chunk size absurd": _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 40 + b"\r\n{}\r\n0\r\n\r\n",
    "chunk truncated": _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n40\r\n{\"status\": ",
    "no final chunk": _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n",
    "header line too long": _OK_HEAD + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n{}",
    "too many headers": _OK_HEAD + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n{}",
    "bad gzip": _OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 11\r\n\r\nnot gzip!!!",
    "truncated gzip": _OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 20\r\n\r\n"
    + gzip.compress(json.dumps(TASK).encode())[:20],
    "bad deflate": _OK_HEAD + b"Content-Encoding: deflate\r\nContent-Length: 4\r\n\r\nzzzz",
    "negative chunk size": _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n-2\r\n{}\r\n0\r\n\r\n",
    "chunk size line too long": _OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"0" * 100_000 + b"2\r\n{}",
    "HTTP/0.9 answer": b'{"status": "RUNNING"}',
}


@pytest.mark.parametrize("provider", ["modelarts", "qianfan"])
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_http_is_a_transient_transport_error(case, provider):
    data = MALFORMED[case]

    def respond(sock, _request):
        sock.sendall(data)
        sock.close()

    with RawServer(respond) as server:
        if provider == "modelarts":
            client = modelarts(server.url, request_timeout=10)
        else:
            client = QianfanClient(ak=AK, sk=SK, endpoint=server.url, environ={}, request_timeout=10)
        with pytest.raises(ExportWidgetsError) as info:
            poll(client)
    error = info.value
    assert isinstance(error, TransportError), (case, type(error), error)
    assert error.transient and not _outcome_of(error)[1]
    assert "\n" not in str(error)
    assert isinstance(error.__cause__, RedactedCause) and error.__suppress_context__
    assert_no_secret(error)


@pytest.mark.parametrize("location", [b"http://[::1", b"http://\xff\xfe/x", b"http://h:99999/x", b"ftp://h/x",
                                      b"data:text/plain,hi", b"", b"http://xn--zz.example\xe9/x"])
def test_a_redirect_with_any_location_is_an_api_error(location):
    data = b"HTTP/1.1 302 Found\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"
    with RawServer(data) as server:
        with pytest.raises(APIError) as info:
            poll(modelarts(server.url))
    assert info.value.http_status == 302 and "redirect" in str(info.value)  # used to be a raw ValueError for some


# -- nothing escapes untyped, nothing chains a secret ---------------------------------------------------------

def test_a_failure_inside_the_request_is_typed_and_its_chain_holds_no_secret():
    """Whatever fails while the request is built or sent (here: a header value http.client refuses, whose
    message quotes the value), the caller gets a TransportError whose traceback holds no secret."""
    with RawServer(answer("200 OK", b"{}")) as server:
        client = modelarts(server.url)
        client.session.auth._token = TOKEN + "\n"  # what a token read from a file used to become
        with pytest.raises(TransportError) as info:
            poll(client)
        assert server.requests == []
    assert info.value.__context__ is None and isinstance(info.value.__cause__, RedactedCause)
    assert_no_secret(info.value)


def test_a_refused_connection_chains_no_url():
    with RawServer(b"") as server:
        url = server.url
    with pytest.raises(TransportError) as info:
        poll(modelarts(url + "/base", request_timeout=5))
    text = "".join(traceback.format_exception(info.value))
    assert "/export-tasks/" not in text and "Max retries" not in text  # urllib3's text names the URL


# -- the watch around it ----------------------------------------------------------------------------------------

def test_hung_polls_free_the_request_budget_and_end_near_their_timeout():
    """Two monitors on a trickling server, with a budget of two requests in flight: a healthy task on the same
    provider still gets polled, and the hung watches end at their own timeout plus at most one deadline."""
    from export_widgets.monitor import ExportMonitor, MonitorStatus
    from export_widgets.poller import Poller

    body = b" " * 100_000
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    poller = Poller(budget=2)
    with trickling_server(body, 0.05, head=head) as slow, \
            RawServer(answer("200 OK", json.dumps(TASK).encode())) as fast:
        hung = [ExportMonitor(modelarts(slow.url, request_timeout=1.0), f"T{i}", "DS1", interval=0.1,
                              timeout=3.0, poller=poller) for i in range(2)]
        started = time.monotonic()
        healthy = ExportMonitor(modelarts(fast.url), "T1", "DS1", interval=0.1, max_interval=0.2, poller=poller)
        try:
            for monitor in hung:
                monitor.wait(timeout=30)
            ended = time.monotonic() - started
            polls = len(healthy.history)
        finally:
            for monitor in (*hung, healthy):
                monitor.stop()
            poller.shutdown()
    print(f"hung watches (timeout 3 s, deadline 1 s) ended after {ended:.2f} s; the healthy task got {polls} polls")
    assert all(m.status == MonitorStatus.TIMED_OUT for m in hung), [m.status for m in hung]
    assert ended < 25  # the trickle alone would hold each poll for 100 s
    assert polls >= 3  # it used to get none: the hung polls held the whole budget
