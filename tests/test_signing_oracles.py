"""Live cross-check: what our auth hooks send is what the official SDK signers compute for the same request.

The committed vectors pin fixed cases; this file re-derives signatures with the installed SDKs
(``bce-python-sdk``, ``huaweicloudsdkcore``, both in the ``test`` extra) for inputs the vectors do not cover,
including hypothesis-generated ids and query values.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from export_widgets.signing import BceAuth, SdkHmacAuth

AK, SK = "HPUAEXAMPLEAK0000001", "ExampleSecretKey0123456789abcdefghijklmnop"
WHEN = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def huawei_signer(tmp_path_factory):
    home = str(tmp_path_factory.mktemp("home"))
    old = os.environ.get("HOME")
    os.environ["HOME"] = home  # huaweicloudsdkcore writes ~/.huaweicloud/application_id on import
    try:
        signer_mod = pytest.importorskip("huaweicloudsdkcore.signer.signer")
        sdk_request = pytest.importorskip("huaweicloudsdkcore.sdk_request")
    finally:
        if old is not None:
            os.environ["HOME"] = old

    class Creds:
        ak, sk = AK, SK

    def sign(method, scheme, host, path, query, headers, body):
        request = sdk_request.SdkRequest(method=method, schema=scheme, host=host, resource_path=path,
                                         query_params=query, header_params=dict(headers), body=body or None)
        return signer_mod.Signer(Creds()).sign(request).header_params["Authorization"]

    return sign


def _ours_huawei(method, url, body=None, token=None):
    prepared = requests.Request(method, url, data=body, headers={"Content-Type": "application/json",
                                                                 "User-Agent": "export-widgets/test"}).prepare()
    return SdkHmacAuth(AK, SK, token, clock=lambda: WHEN)(prepared)


def _check_huawei(huawei_signer, signed):
    parts = urlsplit(signed.url)
    headers = {k: v for k, v in signed.headers.items() if k != "Authorization"}
    body = signed.body.decode() if isinstance(signed.body, bytes) else signed.body
    official = huawei_signer(signed.method, parts.scheme, parts.netloc, parts.path,
                             parse_qsl(parts.query, keep_blank_values=True), headers, body)
    assert signed.headers["Authorization"] == official


@pytest.mark.parametrize("url", [
    "https://modelarts.cn-north-4.myhuaweicloud.com/v2/p0a1/datasets/ds_1-a/export-tasks/TZMuy7OKbClkGCAc3gb",
    "http://127.0.0.1:18080/v2/p0a1/datasets/ds/export-tasks?offset=2&limit=100&export_type=3",
    "http://127.0.0.1:18080/v2/p0a1/datasets/" + quote("数据 集", safe="") + "/export-tasks",
])
def test_huawei_hook_equals_official_signer(huawei_signer, url):
    _check_huawei(huawei_signer, _ours_huawei("GET", url))


def test_huawei_hook_with_security_token_and_body_equals_official_signer(huawei_signer):
    signed = _ours_huawei("POST", "http://127.0.0.1:9/v2/p/datasets/d/export-tasks", body=b'{"path": "/b/"}',
                          token="temporary-token-EXAMPLE")
    assert "x-security-token" in signed.headers["Authorization"]
    _check_huawei(huawei_signer, signed)


_ids = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(segment=_ids.filter(lambda s: s not in (".", "..")), key=_ids, value=st.text(max_size=12))
def test_huawei_hook_equals_official_signer_for_arbitrary_ids(huawei_signer, segment, key, value):
    url = f"http://127.0.0.1:8080/v2/p/datasets/{quote(segment, safe='')}/export-tasks?" \
          f"{quote(key, safe='')}={quote(value, safe='')}"
    _check_huawei(huawei_signer, _ours_huawei("GET", url))


@settings(max_examples=40, deadline=None)
@given(host_port=st.integers(1, 65535), action=st.text(min_size=1, max_size=20))
def test_bce_hook_equals_official_signer(host_port, action):
    signer_mod = pytest.importorskip("baidubce.auth.bce_v1_signer")
    from baidubce.auth.bce_credentials import BceCredentials

    url = f"http://127.0.0.1:{host_port}/v2/dataset?Action={quote(action, safe='')}"
    prepared = requests.Request("POST", url, data=b"{}", headers={"Content-Type": "application/json"}).prepare()
    signed = BceAuth(AK, SK, expiration=300, clock=lambda: WHEN)(prepared)
    names = {"host", "content-type", "x-bce-date"}
    headers = {k.encode(): v.encode() for k, v in signed.headers.items() if k.lower() in names}
    official = signer_mod.sign(BceCredentials(AK.encode(), SK.encode()), b"POST", b"/v2/dataset", headers,
                               {b"Action": action.encode()}, timestamp=int(WHEN.timestamp()),
                               expiration_in_seconds=300, headers_to_sign={n.encode() for n in names})
    official = official.decode() if isinstance(official, bytes) else official
    ours = signed.headers["Authorization"]
    # Same prefix and signature; the official list order comes from a set, so compare it as a set.
    assert ours.rsplit("/", 1)[1] == official.rsplit("/", 1)[1]
    assert set(ours.split("/")[4].split(";")) == set(official.split("/")[4].split(";"))
