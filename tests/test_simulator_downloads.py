"""The file behind a finished Qianfan export: served by the simulator over real HTTP, a deterministic zip of the
advertised size, behind a strict, expiring pre-signed query, with HTTP Range and download faults."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import zipfile
from urllib.parse import urlsplit

import pytest
import requests

from export_widgets.signing import BceAuth
from export_widgets.simulator import DOWNLOAD_FAULT_KINDS, ExportFile, FakeClock, Fault, Simulator, TaskSpec, serve
from export_widgets.simulator.bos import parse_range, presign
from export_widgets.simulator.exportfile import MIB, MIN_SIZE, export_file_size

TASK = "task-dl00000001"


@pytest.fixture
def done_sim():
    """A simulator with one finished Qianfan export of exactly 300,000 bytes."""
    with serve([TaskSpec("qianfan", TASK, duration=10, size_bytes=300_000, storage_type="BOS",
                         path="bos:/dl-bucket/exports/v1.zip")], clock=FakeClock()) as sim:
        sim.clock.advance(10)
        yield sim
        assert not sim.errors, sim.errors


def describe(sim: Simulator, task_id: str = TASK) -> dict:
    session = requests.Session()
    session.auth = BceAuth(sim.credentials.qianfan_ak, sim.credentials.qianfan_sk, expiration=300)
    response = session.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", data=json.dumps({"taskId": task_id}),
                            headers={"Content-Type": "application/json"}, timeout=5)
    return response.json()["result"]


def test_the_download_url_serves_the_advertised_zip(done_sim):
    result = describe(done_sim)
    url = result["downloadUrl"]
    assert url == done_sim.download_url_for(TASK)
    assert url.startswith(f"{done_sim.url}/bos/dl-bucket/exports/v1.zip?authorization=bce-auth-v1%2F")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/zip" and response.headers["Accept-Ranges"] == "bytes"
    assert int(response.headers["Content-Length"]) == len(response.content) == 300_000
    assert response.content == done_sim.export_file(TASK).read()
    assert hashlib.sha256(response.content).hexdigest() == done_sim.export_file(TASK).sha256()
    assert result["sizeMB"] == round(300_000 / MIB, 2) == 0.29
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.testzip() is None and archive.namelist() == ["export/samples.jsonl"]
    record = done_sim.requests[-1]
    assert (record.kind, record.operation, record.task_id, record.status, record.auth_ok) == (
        "download", "GetObject", TASK, 200, True)
    assert done_sim.request_count(operation="download") == 1


def test_size_mb_is_a_rounded_mib_figure():
    for size_mb in (0.05, 12.5, 842.37):
        size = export_file_size("task-x", size_mb)
        assert round(size / MIB, 2) == size_mb and size != round(size_mb * MIB)  # close, never exact
    assert round(export_file_size("t", 0.0) / MIB, 2) == 0.0 and export_file_size("t", 1.0, size_bytes=5) == MIN_SIZE
    with serve([TaskSpec("qianfan", "task-mb", duration=1, size_mb=0.05)], clock=FakeClock()) as sim:
        sim.clock.advance(1)
        body = requests.get(describe(sim, "task-mb")["downloadUrl"], timeout=10).content
    assert round(len(body) / MIB, 2) == 0.05 and zipfile.ZipFile(io.BytesIO(body)).testzip() is None


def test_export_files_are_deterministic_and_differ_per_task():
    first, again, other = ExportFile("task-a", 200_000), ExportFile("task-a", 200_000), ExportFile("task-b", 200_000)
    assert first.read() == again.read() and first.read() != other.read() and first.etag != other.etag
    content = first.read()
    for number in range(3):  # every 64 KiB piece is numbered: a resume at a wrong offset shows
        assert content.count(f"#{number:012d}:".encode()) == 1


def test_a_larger_file_streams_with_the_right_digest():
    with serve([TaskSpec("qianfan", "task-big", duration=1, size_mb=24.0)], clock=FakeClock()) as sim:
        sim.clock.advance(1)
        digest, total = hashlib.sha256(), 0
        with requests.get(sim.download_url_for("task-big"), stream=True, timeout=30) as response:
            for piece in response.iter_content(1 << 20):
                digest.update(piece)
                total += len(piece)
        assert total == sim.export_file("task-big").size and digest.hexdigest() == sim.export_file("task-big").sha256()


# -- Range -------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("header,start,end", [
    ("bytes=0-99", 0, 100), ("bytes=100000-", 100_000, 300_000), ("bytes=-1000", 299_000, 300_000),
    ("bytes=299999-400000", 299_999, 300_000), ("bytes=-999999", 0, 300_000), ("bytes = 5 - 9", 5, 10),
])
def test_ranges_answer_206(done_sim, header, start, end):
    response = requests.get(done_sim.download_url_for(TASK), headers={"Range": header}, timeout=10)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/300000"
    assert response.content == done_sim.export_file(TASK).read(start, end)


@pytest.mark.parametrize("header", ["bytes=300000-", "bytes=400000-500000", "bytes=9-5", "bytes=-0", "bytes=a-b",
                                    "bytes=-", "bytes=0-1,5-9"])
def test_bad_ranges_answer_416(done_sim, header):
    response = requests.get(done_sim.download_url_for(TASK), headers={"Range": header}, timeout=10)
    assert response.status_code == 416 and response.headers["Content-Range"] == "bytes */300000"
    assert response.json()["code"] == "InvalidRange" and response.json()["requestId"]


def test_other_units_and_stale_if_range_get_the_whole_file(done_sim):
    url = done_sim.download_url_for(TASK)
    assert requests.get(url, headers={"Range": "items=0-5"}, timeout=10).status_code == 200
    etag = requests.head(url, timeout=10).headers["ETag"]
    fresh = requests.get(url, headers={"Range": "bytes=10-", "If-Range": etag}, timeout=10)
    stale = requests.get(url, headers={"Range": "bytes=10-", "If-Range": '"an-older-version"'}, timeout=10)
    assert (fresh.status_code, len(fresh.content)) == (206, 299_990)
    assert (stale.status_code, len(stale.content)) == (200, 300_000)


def test_head_gives_the_size_without_a_body(done_sim):
    with socket.create_connection(("127.0.0.1", done_sim.port), timeout=10) as sock:
        path = done_sim.download_url_for(TASK).removeprefix(done_sim.url)
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1:{done_sim.port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 300000" in head and body == b""


def test_parse_range_unit():
    assert parse_range(None, 10) is None and parse_range("bytes=2-4", 10) == (2, 5)


# -- the pre-signature ---------------------------------------------------------------------------------------------

def _bos_error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and body["requestId"] == response.headers["x-bce-request-id"]


def test_signature_is_checked_strictly(done_sim):
    url = done_sim.download_url_for(TASK)
    base, query = url.split("?")
    _bos_error(requests.get(base, timeout=10), 403, "AccessDenied")
    _bos_error(requests.get(url[:-1] + ("0" if url[-1] != "0" else "1"), timeout=10), 403, "SignatureDoesNotMatch")
    other_key = base.replace("v1.zip", "v2.zip") + "?" + query
    _bos_error(requests.get(other_key, timeout=10), 403, "SignatureDoesNotMatch")
    _bos_error(requests.get(url, headers={"Host": f"localhost:{done_sim.port}"}, timeout=10), 403,
               "SignatureDoesNotMatch")
    forged = presign(done_sim.url, "dl-bucket", "exports/v1.zip", now=done_sim.clock.now(), ttl=1800,
                     access_key=done_sim.credentials.qianfan_ak, secret_key=done_sim.credentials.qianfan_sk)
    _bos_error(requests.get(forged, timeout=10), 403, "SignatureDoesNotMatch")  # the user's key cannot sign it
    assert [r.auth_ok for r in done_sim.requests] == [False] * 5


def test_urls_expire_and_describing_again_refreshes_them(done_sim):
    url = describe(done_sim)["downloadUrl"]
    done_sim.clock.advance(1800)
    assert requests.get(url, headers={"Range": "bytes=0-0"}, timeout=10).status_code == 206  # last valid second
    done_sim.clock.advance(1)
    _bos_error(requests.get(url, timeout=10), 403, "RequestExpired")
    fresh = describe(done_sim)["downloadUrl"]
    assert fresh != url and requests.get(fresh, timeout=10).status_code == 200


def test_download_ttl_comes_from_the_scenario():
    with serve([TaskSpec("qianfan", TASK, duration=1, size_bytes=1000)], clock=FakeClock(), download_ttl=60) as sim:
        sim.clock.advance(1)
        url = sim.download_url_for(TASK)
        assert "%2F60%2Fhost%2F" in url
        sim.clock.advance(61)
        assert requests.get(url, timeout=10).status_code == 403


def test_unknown_and_unfinished_objects():
    with serve([TaskSpec("qianfan", TASK, duration=10, size_bytes=1000)], clock=FakeClock()) as sim:
        assert describe(sim)["downloadUrl"] == ""
        with pytest.raises(ValueError, match="not finished"):
            sim.download_url_for(TASK)
        signed = presign(sim.url, "qianfan-sys-export", f"dataset-export/{TASK}/export.zip", now=sim.clock.now(),
                         ttl=1800, access_key=sim.credentials.bos_ak, secret_key=sim.credentials.bos_sk)
        _bos_error(requests.get(signed, timeout=10), 404, "NoSuchKey")  # signed, but not exported yet
        sim.clock.advance(10)
        assert requests.get(signed, timeout=10).status_code == 200


# -- download faults ------------------------------------------------------------------------------------------------

def _raw_get(sim: Simulator, url: str, headers: dict | None = None) -> tuple[int, int, bytes]:
    """(status, Content-Length, body bytes received before the server closed): a raw socket, so every byte
    that arrived is counted (``requests`` drops its partial buffer when a body ends short)."""
    lines = [f"GET {url.removeprefix(sim.url)} HTTP/1.1", f"Host: 127.0.0.1:{sim.port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = bytearray()
        for _ in range(100_000):  # bounded: at most ~6 GB at 64 KiB per recv
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return int(head.split(b" ")[1]), length, body


def test_a_cut_download_resumes_with_range_to_the_exact_bytes(done_sim):
    url = done_sim.download_url_for(TASK)
    done_sim.set_faults(TASK, [Fault("download_cut", size=123_457)])
    status, length, first = _raw_get(done_sim, url)
    assert (status, length, len(first)) == (200, 300_000, 123_457)  # the body ends short of its length
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # what a requests client sees of it
        done_sim.set_faults(TASK, [Fault("download_cut", size=10)])
        requests.get(url, timeout=10).content  # noqa: B018
    rest = requests.get(url, headers={"Range": f"bytes={len(first)}-"}, timeout=10)
    assert rest.status_code == 206 and first + rest.content == done_sim.export_file(TASK).read()
    assert [r.fault for r in done_sim.requests] == ["download_cut", "download_cut", None]


def test_a_cut_without_size_drops_halfway_through_the_range(done_sim):
    done_sim.set_faults(TASK, [Fault("download_cut")])
    status, length, received = _raw_get(done_sim, done_sim.download_url_for(TASK), {"Range": "bytes=100000-"})
    assert (status, length, len(received)) == (206, 200_000, 100_000)
    assert received == done_sim.export_file(TASK).read(100_000, 200_000)


def test_download_faults_do_not_touch_api_calls_and_vice_versa(done_sim):
    done_sim.set_faults(TASK, [Fault("download_error", status=503), Fault("server_error")])
    assert describe_status(done_sim) == 500  # the API call takes the API fault
    failed = requests.get(done_sim.download_url_for(TASK), timeout=10)
    _bos_error(failed, 503, "ServiceUnavailable")
    assert requests.get(done_sim.download_url_for(TASK), timeout=10).status_code == 200


def describe_status(sim: Simulator) -> int:
    session = requests.Session()
    session.auth = BceAuth(sim.credentials.qianfan_ak, sim.credentials.qianfan_sk, expiration=300)
    return session.post(f"{sim.url}/v2/dataset?Action=DescribeExportTask", data=json.dumps({"taskId": TASK}),
                        headers={"Content-Type": "application/json"}, timeout=5).status_code


def test_no_range_and_slow_faults(done_sim):
    url = done_sim.download_url_for(TASK)
    done_sim.set_faults(TASK, [Fault("download_no_range"), Fault("download_slow", seconds=0.01)])
    ignored = requests.get(url, headers={"Range": "bytes=100-"}, timeout=10)
    assert ignored.status_code == 200 and len(ignored.content) == 300_000
    slow = requests.get(url, timeout=10)
    assert slow.content == done_sim.export_file(TASK).read()
    assert [r.fault for r in done_sim.requests] == ["download_no_range", "download_slow"]


def test_every_download_fault_kind_is_tested():
    assert DOWNLOAD_FAULT_KINDS == {"download_cut", "download_error", "download_slow", "download_no_range"}


def test_download_urls_stay_on_loopback_and_carry_no_user_secret(done_sim):
    url = urlsplit(done_sim.download_url_for(TASK))
    assert url.hostname == "127.0.0.1" and url.port == done_sim.port
    assert done_sim.credentials.qianfan_sk not in url.query and done_sim.credentials.bos_sk not in url.query


def test_the_signed_query_never_reaches_the_simulators_log(done_sim, caplog):
    caplog.set_level("DEBUG", logger="export_widgets.simulator")
    url = done_sim.download_url_for(TASK)
    requests.get(url, timeout=10)
    path = url.removeprefix(done_sim.url)
    with socket.create_connection(("127.0.0.1", done_sim.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1 trailing-junk\r\n\r\n".encode())  # http.server logs bad lines
        sock.recv(65536)
    assert "/bos/dl-bucket/exports/v1.zip?***" in caplog.text
    signature = url.rsplit("%2F", 1)[-1]
    assert "authorization" not in caplog.text and signature not in caplog.text
