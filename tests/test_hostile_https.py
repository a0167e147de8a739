"""One total deadline per request, over real TLS: the README's promise where real endpoints are (``https://``).

``tests/test_hostile_http.py`` proves the deadline against plain-HTTP servers. Here the same hostile servers
(``tests/hostile.py`` with ``tls=``) speak TLS on 127.0.0.1 with a throw-away self-signed certificate made by the
``openssl`` CLI, and the clients are built as a user builds them (``make_client``, the certificate trusted through
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``). Four ways to hold a poll: headers trickled a byte per TLS record, a
body trickled after good headers, silence after a complete handshake, and a handshake stalled half way (the
client's hello is read and never answered: the connect path).

A certificate error must not pass for a timeout: the timeout cases also check that the request reached the server
(so verification succeeded), that the poll lasted at least about the deadline and that the message names the
deadline; a positive control answers quickly, and a negative control (certificate not trusted) fails otherwise.
No tight timings: each bound is far below what the server would hold the poll for.

What cuts which case: the trickles keep every socket read short, so only the watchdog shutting the TLS socket
down ends them (with that shutdown disabled they last the servers' 50-60 s); silence and the stalled handshake
are also ended by the per-operation socket timeout, which ``_http`` caps at what is left of the deadline.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile import RawServer, answer, silent_server, trickling_server
from waiting import wait_for

from export_widgets import make_client
from export_widgets.errors import ExportWidgetsError, TransportError
from export_widgets.monitor import ExportMonitor, MonitorStatus

REQUEST_TIMEOUT = 1.0
DEADLINE_MESSAGE = f"did not finish within its {REQUEST_TIMEOUT:g} s deadline"
# Canary credentials: none may appear in an error, its traceback or a history row.
AK, SK = "HOSTILETLSAKEXAMPLE01", "hostile-tls-secret-key-" + "s" * 20
SECURITY_TOKEN = "hostile-tls-security-token-" + "t" * 40
SECRETS = (AK, SK, SECURITY_TOKEN)
MODELARTS_TASK = {"task_id": "T1", "status": "RUNNING", "progress": 40.0}
QIANFAN_TASK = {"requestId": "r-1", "result": {"exportStatus": "Exporting", "progress": "40%"}}
PROVIDERS = ["modelarts", "qianfan"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, valid one day: (cert.pem, key.pem)."""
    openssl = shutil.which("openssl") or "/usr/bin/openssl"
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """The servers' side of TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*map(str, certificate))
    return context


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Trust the test certificate as a user trusts a private CA: ``REQUESTS_CA_BUNDLE`` (read when a client is
    built). No proxy for the loopback servers, whatever the machine's environment says."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificate[0]))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")
    yield certificate[0]


def client_for(provider: str, url: str):
    """The provider's client as a user builds it: make_client, an endpoint, keys from the environment."""
    if provider == "modelarts":
        environ = {"HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_SECURITY_TOKEN": SECURITY_TOKEN,
                   "HUAWEICLOUD_SDK_PROJECT_ID": "p1"}
    else:
        environ = {"QIANFAN_ACCESS_KEY": AK, "QIANFAN_SECRET_KEY": SK}
    return make_client(provider, endpoint=url, request_timeout=REQUEST_TIMEOUT, environ=environ)


def poll(client) -> object:
    if client.name == "qianfan":
        return client.get_export_task("task-1")
    return client.get_export_task("DS1", "T1")


def task_body(provider: str) -> bytes:
    return json.dumps(MODELARTS_TASK if provider == "modelarts" else QIANFAN_TASK).encode()


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def assert_timed_out(error: BaseException, seen: float) -> None:
    """The poll failed because the deadline passed, not for any other reason (a certificate error included)."""
    assert isinstance(error, TransportError), (type(error), error)
    message = str(error)
    assert DEADLINE_MESSAGE in message, message
    assert "certificate" not in message.lower() and "ssl" not in message.lower(), message
    assert error.transient
    assert seen >= REQUEST_TIMEOUT / 2, seen  # a refused certificate fails in milliseconds; a deadline cannot
    assert seen < 20, seen  # each server below would hold the poll for a minute
    assert_no_secret("".join(traceback.format_exception(error)))


# -- the four ways to hold a poll over TLS ---------------------------------------------------------------------

_HEADERS = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 5_000 + b"\r\n\r\n{}"
_BODY = json.dumps(MODELARTS_TASK).encode() + b" " * 10_000
_BODY_HEAD = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(_BODY)}\r\n\r\n"
              .encode())


def hostile_server(case: str, tls: ssl.SSLContext) -> RawServer:
    if case == "trickled headers":  # one byte per TLS record, 100 a second: 50 s of headers
        return trickling_server(_HEADERS, 0.01, tls=tls)
    if case == "trickled body":  # good headers at once, then 20 bytes a second: 60 s (its limit) of body
        return trickling_server(_BODY, 0.05, head=_BODY_HEAD, tls=tls)
    if case == "silent after handshake":
        return silent_server(tls=tls)
    assert case == "stalled handshake"
    return RawServer(b"", tls=tls, handshake=False, lifetime=60)


CASES = ["trickled headers", "trickled body", "silent after handshake", "stalled handshake"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_tls_server_is_cut_at_the_request_deadline(case, provider, tls, trusted):
    with hostile_server(case, tls) as server:
        client = client_for(provider, server.url)
        started = time.monotonic()
        with pytest.raises(ExportWidgetsError) as info:
            poll(client)
        seen = time.monotonic() - started
        client.close()
        connections, requests, hellos = len(server._workers), list(server.requests), list(server.hellos)
    print(f"{provider}, {case}: deadline {REQUEST_TIMEOUT:g} s, the poll ended after {seen:.2f} s")
    assert_timed_out(info.value, seen)
    assert connections >= 1
    if case == "stalled handshake":  # the connect path: the client's hello came (a TLS handshake record, 0x16)
        assert requests == [] and hellos and hellos[0][:1] == b"\x16", hellos
    else:  # the handshake, certificate check included, succeeded: the signed request arrived
        assert len(requests) == 1 and AK.encode() in requests[0]


@pytest.mark.parametrize("case", ["trickled body", "stalled handshake"])
def test_a_watch_records_the_poll_the_deadline_cut(case, tls, trusted):
    """A monitor polling such a server books the failed poll in its history (a transient failure: the watch goes
    on), with the deadline named and no secret."""
    with hostile_server(case, tls) as server:
        monitor = ExportMonitor(client_for("modelarts", server.url), "T1", "DS1", interval=0.1)
        try:
            assert wait_for(lambda: len(monitor.history) >= 1, timeout=20)
            status, error = monitor.status, monitor.error
        finally:
            monitor.stop()
            monitor.client.close()
    row = monitor.history.row(0)
    print(f"{case}: history row {row.outcome!r}, latency {row.latency_s}, {row.error_message!r}")
    assert row.outcome == "transport_error" and row.state is None
    assert row.error_message is not None and DEADLINE_MESSAGE in row.error_message
    assert_no_secret(row.error_message)
    assert status == MonitorStatus.RUNNING and error is None  # transient: retried, not the end of the watch


# -- controls: the certificate plumbing works, and a certificate error is not a timeout ---------------------------

@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_same_tls_server_answering_at_once_is_read(provider, variable, tls, trusted, monkeypatch):
    if variable == "CURL_CA_BUNDLE":
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        monkeypatch.setenv("CURL_CA_BUNDLE", str(trusted))
    with RawServer(answer("200 OK", task_body(provider)), tls=tls) as server:
        assert server.url.startswith("https://127.0.0.1:")
        client = client_for(provider, server.url)
        started = time.monotonic()
        task = poll(client)
        seen = time.monotonic() - started
        client.close()
        assert len(server.requests) == 1
    assert task.progress == 40.0
    assert seen < REQUEST_TIMEOUT * 20  # well inside any bound; the point is that it succeeded


def test_an_untrusted_certificate_fails_otherwise(tls, trusted, monkeypatch):
    """Without the test certificate trusted, the same trickling server fails at once with an error that the
    timeout assertions above reject: a certificate problem cannot pass for the deadline."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # the default bundle (certifi), which never signed our certificate
    with hostile_server("trickled body", tls) as server:
        client = client_for("modelarts", server.url)
        started = time.monotonic()
        with pytest.raises(TransportError) as info:
            poll(client)
        seen = time.monotonic() - started
        client.close()
        assert server.requests == []  # refused in the handshake: nothing was sent
    message = str(info.value)
    print(f"untrusted certificate: failed after {seen:.2f} s: {message}")
    assert DEADLINE_MESSAGE not in message
    # ssl's reason, not urllib3's wrapper (which names the request's path and was cut off before the reason)
    assert "connection failed: TLS: certificate verify failed: self-signed certificate" in message
    assert "/export-tasks/" not in message and "Max retries" not in message
    with pytest.raises(AssertionError):
        assert_timed_out(info.value, seen)
    assert_no_secret("".join(traceback.format_exception(info.value)))
