"""Generate golden test vectors for the two request-signing algorithms.

The official vendor SDKs are used as oracles; nothing here re-implements the
algorithms (the hashlib/hmac calls below only *check* the SDK output):

* SDK-HMAC-SHA256 (Huawei Cloud / OTC ModelArts):
  ``huaweicloudsdkcore.signer.signer.Signer(credentials).sign(SdkRequest)``
  -> tests/vectors/sdk_hmac_sha256.json
* BCE auth v1 (Baidu Qianfan console API):
  ``baidubce.auth.bce_v1_signer.sign(...)``
  -> tests/vectors/bce_auth_v1.json

Run with a Python that has bce-python-sdk and huaweicloudsdkcore installed, e.g.

    python scripts/gen_signing_vectors.py

It rewrites tests/vectors/*.json. The clock is fixed, so re-running gives
byte-identical files. This script deliberately imports nothing from
export_widgets.

Importing huaweicloudsdkcore writes ~/.huaweicloud/application_id, so HOME is
pointed at a throw-away directory before the import.
"""

import ast
import atexit
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path

_TMP_HOME = tempfile.mkdtemp(prefix="gen-signing-vectors-home-")
atexit.register(shutil.rmtree, _TMP_HOME, ignore_errors=True)
os.environ["HOME"] = _TMP_HOME  # must happen before importing huaweicloudsdkcore

from baidubce import utils as bce_utils  # noqa: E402
from baidubce.auth import bce_v1_signer  # noqa: E402
from baidubce.auth.bce_credentials import BceCredentials  # noqa: E402
from huaweicloudsdkcore.auth.credentials import BasicCredentials  # noqa: E402
from huaweicloudsdkcore.client import Client  # noqa: E402
from huaweicloudsdkcore.sdk_request import SdkRequest  # noqa: E402
from huaweicloudsdkcore.signer.signer import Signer  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "vectors"

# Fixed clock: 2024-06-01T12:00:00Z
FIXED_TIME = datetime(2024, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
FIXED_EPOCH = int(FIXED_TIME.timestamp())  # 1717243200

# --------------------------------------------------------------------------------------
# SDK-HMAC-SHA256 (huaweicloudsdkcore)
# --------------------------------------------------------------------------------------
HW_AK = "HPUAEXAMPLEAK0000001"
HW_SK = "ExampleSecretKey0123456789abcdefghijklmnop"
HW_PROJECT = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"  # 32 hex chars, like an IAM project id
HW_HOST = "modelarts.cn-north-4.myhuaweicloud.com"
HW_DATE = FIXED_TIME.strftime("%Y%m%dT%H%M%SZ")  # 20240601T120000Z
HW_UA = "huaweicloud-usdk-python/3.0"  # what Client sends when HttpConfig.user_agent is None
HW_SECURITY_TOKEN = "gQpjbi1ub3J0aC00EXAMPLE-temporary-security-token+/=="

STATUS_PATH = "/v2/{project_id}/datasets/{dataset_id}/export-tasks/{task_id}"
LIST_PATH = "/v2/{project_id}/datasets/{dataset_id}/export-tasks"

_CLIENT = Client()  # only used for its path/query/body helpers, never sends anything


def hw_path(template, **path_params):
    """Fill path params exactly like the SDK client does (quote(str(v), safe=''))."""
    params = {"project_id": HW_PROJECT, **path_params}
    return _CLIENT._parse_path_params({}, params, template, None)


def hw_headers(host=HW_HOST, content_type=True, project_id=True, **extra):
    """Headers the SDK client pipeline has on the request just before Signer.sign().

    ``host=None`` leaves Host out so the signer adds it from the endpoint's netloc.
    """
    headers = {"User-Agent": HW_UA}
    if content_type:
        headers["Content-Type"] = "application/json"
    if project_id:
        headers["X-Project-Id"] = HW_PROJECT
    headers.update(extra)
    headers["X-Sdk-Date"] = HW_DATE
    if host is not None:
        headers["Host"] = host
    return headers


def hw_case(name, path, method="GET", scheme="https", host=HW_HOST, query=(), headers=None, body=""):
    return {
        "name": name,
        "ak": HW_AK,
        "sk": HW_SK,
        "method": method,
        "scheme": scheme,
        "host": host,
        "path": path,
        "query": [[k, v] for k, v in query],
        "headers": headers if headers is not None else hw_headers(),
        "body": body,
    }


def hw_cases():
    create_body = _CLIENT._parse_body({
        "path": "/export-bucket/exports/",
        "export_type": 3,
        "export_format": 2,
        "version_format": "Default",
        "export_params": {"export_dest": "DIR", "sample_state": ""},
    })
    return [
        hw_case("hw-get-export-task-status",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="TZMuy7OKbClkGCAc3gb")),
        hw_case("hw-get-status-ids-with-dash-underscore",
                hw_path(STATUS_PATH, dataset_id="ds-2024_06-a1B2", task_id="task_01-export_XYZ-9")),
        hw_case("hw-get-status-host-with-port-added-by-signer",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="TZMuy7OKbClkGCAc3gb"),
                scheme="http", host="127.0.0.1:18080", headers=hw_headers(host=None)),
        hw_case("hw-get-status-no-content-type",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="TZMuy7OKbClkGCAc3gb"),
                headers=hw_headers(content_type=False)),
        hw_case("hw-list-unsorted-query",
                hw_path(LIST_PATH, dataset_id="gfghHSokody6AJigS5A"),
                query=[("limit", "10"), ("offset", "0"), ("export_type", "3")]),
        hw_case("hw-list-query-special-characters",
                hw_path(LIST_PATH, dataset_id="gfghHSokody6AJigS5A"),
                query=[("search", "a b+c/d"), ("limit", "10"), ("filter", "k=v&x~ü"), ("marker", "")]),
        hw_case("hw-post-create-export-task-json-body",
                hw_path(LIST_PATH, dataset_id="gfghHSokody6AJigS5A"),
                method="POST", body=create_body),
        hw_case("hw-odd-path-space-and-unicode",
                hw_path(STATUS_PATH, dataset_id="data set ü", task_id="数据")),
        hw_case("hw-odd-path-reserved-characters",
                hw_path(STATUS_PATH, dataset_id="x+y~z!", task_id="a:b@c;d,e")),
        hw_case("hw-odd-path-characters",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="a/b")),
        hw_case("hw-odd-path-encoded-slash-at-end",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="abc/")),
        hw_case("hw-security-token-temporary-aksk",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="TZMuy7OKbClkGCAc3gb"),
                headers=hw_headers(**{"X-Security-Token": HW_SECURITY_TOKEN})),
        hw_case("hw-underscore-header-unsigned",
                hw_path(STATUS_PATH, dataset_id="gfghHSokody6AJigS5A", task_id="TZMuy7OKbClkGCAc3gb"),
                headers=hw_headers(**{"X_Trace_Id": "trace-0001"})),
    ]


class _Creds:
    def __init__(self, ak, sk):
        self.ak, self.sk = ak, sk


def hw_request(case, drop=()):
    return SdkRequest(
        method=case["method"],
        schema=case["scheme"],
        host=case["host"],
        resource_path=case["path"],
        query_params=[(k, v) for k, v in case["query"]],
        header_params={k: v for k, v in case["headers"].items() if k not in drop},
        body=case["body"] or None,
    )


def hw_expected(case):
    signer = Signer(_Creds(case["ak"], case["sk"]))
    seen = {}

    # Record the SDK's own intermediate values while sign() runs.
    def capture(name, fn):
        def wrapper(*args):
            result = fn(*args)
            seen[name] = result
            if name == "canonical_request":
                seen["signed_headers"] = args[1]
            return result
        return wrapper

    signer._process_canonical_request = capture("canonical_request", signer._process_canonical_request)
    signer._process_string_to_sign = capture("string_to_sign", signer._process_string_to_sign)

    request = signer.sign(hw_request(case))
    authorization = request.header_params["Authorization"]
    wire_path, _, wire_query = request.uri.partition("?")
    assert wire_path == case["path"], (wire_path, case["path"])

    # Checks only: signature == HMAC-SHA256(SK, string_to_sign); sts hashes the canonical request.
    sts = seen["string_to_sign"]
    canonical_hash = hashlib.sha256(seen["canonical_request"].encode("utf-8")).hexdigest()
    assert sts == f"SDK-HMAC-SHA256\n{HW_DATE}\n{canonical_hash}"
    signature = hmac.new(case["sk"].encode(), sts.encode(), hashlib.sha256).hexdigest()
    signed = ";".join(seen["signed_headers"])
    assert authorization == f"SDK-HMAC-SHA256 Access={case['ak']}, SignedHeaders={signed}, Signature={signature}"

    # Cross-check: the credentials object (which adds X-Project-Id / X-Security-Token itself)
    # produces the same Authorization.
    creds = BasicCredentials(case["ak"], case["sk"], case["headers"].get("X-Project-Id"))
    if "X-Security-Token" in case["headers"]:
        creds.with_security_token(case["headers"]["X-Security-Token"])
    via_creds = creds.sign_request(hw_request(case, drop=("X-Project-Id", "X-Security-Token")))
    assert via_creds.header_params["Authorization"] == authorization
    assert via_creds.uri == request.uri

    return {
        "canonical_request": seen["canonical_request"],
        "string_to_sign": sts,
        "signed_headers": signed,
        "authorization": authorization,
        "wire_query": wire_query,
    }


# --------------------------------------------------------------------------------------
# BCE auth v1 (baidubce.auth.bce_v1_signer)
# --------------------------------------------------------------------------------------
BCE_AK = "0123456789abcdef0123456789abcdef"
BCE_SK = "fedcba9876543210fedcba9876543210"
BCE_DATE = FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")  # 2024-06-01T12:00:00Z
QIANFAN_SOURCE = "qianfan_py_sdk_v0.4.12.3"


def qianfan_headers(host="qianfan.baidubce.com", **extra):
    """Headers qianfan's console requestor has on the request when it calls iam_sign()."""
    headers = {"Content-Type": "application/json", "Host": host, "request-source": QIANFAN_SOURCE}
    headers.update(extra)
    headers["x-bce-date"] = BCE_DATE
    return headers


def bce_case(name, headers=None, params=None, headers_to_sign="all", expiration=300,
             task_id="task-7f3a9c1e2b", method="POST", path="/v2/dataset"):
    headers = headers if headers is not None else qianfan_headers()
    if headers_to_sign == "all":  # what qianfan does: every header it sends, lower-cased
        headers_to_sign = sorted(k.lower() for k in headers)
    return {
        "name": name,
        "ak": BCE_AK,
        "sk": BCE_SK,
        "method": method,
        "path": path,
        "params": params if params is not None else {"Action": "DescribeExportTask"},
        "headers": headers,
        "headers_to_sign": headers_to_sign,
        "timestamp": FIXED_EPOCH,
        "expiration": expiration,
        "body": json.dumps({"taskId": task_id}),  # not signed; informational
    }


def bce_cases():
    return [
        bce_case("bce-qianfan-describe-export-task"),
        bce_case("bce-host-with-port", headers=qianfan_headers(host="127.0.0.1:18080")),
        bce_case("bce-expiration-1800", expiration=1800),
        bce_case("bce-task-id-dash-underscore", task_id="task-ab_12-CD_34"),
        bce_case("bce-params-special-characters",
                 params={"Action": "DescribeExportTask", "q": "a b/c+d=e", "flag": None}),
        bce_case("bce-headers-to-sign-none-default-set", headers_to_sign=None),
        bce_case("bce-empty-header-value-skipped",
                 headers=qianfan_headers(**{"Content-MD5": "", "x-bce-empty": ""})),
        bce_case("bce-unlisted-x-bce-header-still-signed",
                 headers=qianfan_headers(**{"x-bce-request-id": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"}),
                 headers_to_sign=["content-type", "host", "request-source", "x-bce-date"]),
    ]


class _CaptureSignerLog(logging.Handler):
    """bce_v1_signer logs its sign_key and the exact bytes it signed at DEBUG level."""

    _PATTERN = re.compile(r"^sign_key=\[([0-9a-f]{64})\] sign_string=\[(\d+) bytes\]\[ (b'.*') \]$", re.S)

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.found = []

    def emit(self, record):
        match = self._PATTERN.match(record.getMessage())
        if match:
            signed = ast.literal_eval(match.group(3))
            assert len(signed) == int(match.group(2))
            self.found.append((match.group(1), signed))


def bce_expected(case):
    assert case["headers"]["x-bce-date"] == bce_utils.get_canonical_time(case["timestamp"]).decode()
    # Same argument types qianfan's iam_sign passes: bytes method/path/keys, str values.
    method = case["method"].encode()
    path = case["path"].encode()
    headers = {k.encode(): v for k, v in case["headers"].items()}
    params = {k.encode(): v for k, v in case["params"].items()}
    to_sign = None if case["headers_to_sign"] is None else [h.encode() for h in case["headers_to_sign"]]

    log = logging.getLogger(bce_v1_signer.__name__)
    capture = _CaptureSignerLog()
    old_level = log.level
    log.addHandler(capture)
    log.setLevel(logging.DEBUG)
    try:
        authorization = bce_v1_signer.sign(
            BceCredentials(case["ak"], case["sk"]), method, path, headers, params,
            timestamp=case["timestamp"], expiration_in_seconds=case["expiration"],
            headers_to_sign=to_sign).decode()
    finally:
        log.removeHandler(capture)
        log.setLevel(old_level)
    [(signing_key, canonical_request)] = capture.found

    # Rebuild the canonical request from the signer's own helpers; it must match what it logged.
    rebuilt = b"\n".join([method, path, bce_utils.get_canonical_querystring(params, True),
                          bce_v1_signer._get_canonical_headers(headers, to_sign)])
    assert rebuilt == canonical_request, (rebuilt, canonical_request)

    prefix, signed_list, signature = authorization.rsplit("/", 2)
    assert prefix == f"bce-auth-v1/{case['ak']}/{case['headers']['x-bce-date']}/{case['expiration']:d}"
    assert signing_key == hmac.new(case["sk"].encode(), prefix.encode(), hashlib.sha256).hexdigest()
    assert signature == hmac.new(signing_key.encode(), canonical_request, hashlib.sha256).hexdigest()

    return {
        "canonical_request": canonical_request.decode("utf-8"),
        "signing_key": signing_key,
        "signature": signature,
        # As listed in the Authorization header (== headers_to_sign, even for names not signed).
        "signed_headers": signed_list.split(";") if signed_list else [],
        "authorization": authorization,
    }


# --------------------------------------------------------------------------------------
def write(name, cases):
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(cases, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    (OUT_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(cases)} cases to {OUT_DIR / name}")


def main():
    hw = hw_cases()
    for case in hw:
        case["expected"] = hw_expected(case)
    bce = bce_cases()
    for case in bce:
        case["expected"] = bce_expected(case)
    for cases in (hw, bce):
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names)), names
    write("sdk_hmac_sha256.json", hw)
    write("bce_auth_v1.json", bce)


if __name__ == "__main__":
    main()
