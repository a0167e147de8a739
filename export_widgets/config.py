"""Resolve endpoints, project ids and credentials: explicit argument > environment > default.

The env-var names are the official SDKs' own, so a machine already set up for them works unchanged.
Secrets live in :class:`Credentials` with ``repr`` masked; nothing here prints or logs them.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import ConfigError
from .redact import redact_url, register_secret

__all__ = [
    "Credentials",
    "ENV",
    "MODELARTS_REGIONS",
    "QIANFAN_DEFAULT_ENDPOINT",
    "clean_credential",
    "modelarts_endpoint",
    "normalise_endpoint",
    "resolve_credentials",
    "validate_id",
    "warn_if_plaintext",
]

_log = logging.getLogger("export_widgets")


class ENV:
    """Environment variable names read by this package (the vendors' SDK conventions)."""

    HUAWEI_AK = "HUAWEICLOUD_SDK_AK"
    HUAWEI_SK = "HUAWEICLOUD_SDK_SK"
    HUAWEI_SECURITY_TOKEN = "HUAWEICLOUD_SDK_SECURITY_TOKEN"
    HUAWEI_PROJECT_ID = "HUAWEICLOUD_SDK_PROJECT_ID"
    QIANFAN_AK = "QIANFAN_ACCESS_KEY"
    QIANFAN_SK = "QIANFAN_SECRET_KEY"
    QIANFAN_BASE_URL = "QIANFAN_CONSOLE_API_BASE_URL"
    QIANFAN_SIGN_EXPIRATION = "QIANFAN_IAM_SIGN_EXPIRATION_SEC"
    #: This package's own: a ModelArts base URL (OTC, a proxy, the simulator) when no region is given.
    MODELARTS_ENDPOINT = "EXPORT_WIDGETS_MODELARTS_ENDPOINT"


QIANFAN_DEFAULT_ENDPOINT = "https://qianfan.baidubce.com"
OTC_MODELARTS_ENDPOINT = "https://modelarts.eu-de.otc.t-systems.com"

#: Huawei Cloud regions with ModelArts (huaweicloudsdkmodelarts 3.1.219 ``ModelArtsRegion``).
MODELARTS_REGIONS: Mapping[str, str] = {
    region: f"https://modelarts.{region}.myhuaweicloud.com"
    for region in (
        "cn-north-1", "cn-north-2", "cn-north-4", "cn-north-9", "cn-north-11", "cn-north-12",
        "cn-east-3", "cn-east-4", "cn-south-1", "cn-southwest-2", "cn-southwest-3",
        "ap-southeast-2", "ap-southeast-3", "ap-southeast-4", "af-south-1", "af-north-1",
        "la-south-2", "la-north-2", "sa-brazil-1", "tr-west-1", "me-east-1",
    )
} | {"ap-southeast-1": "https://modelarts.ap-southeast-1.myhuaweicloud.cn"}  # the one .cn exception

# Ids go into URL paths: letters, digits, '-', '_' and '.', never '/', '..' or whitespace.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")


@dataclass(frozen=True)
class Credentials:
    """Resolved credentials. ``source`` says where they came from (``"argument"`` or ``"environment"``)."""

    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    source: str = "argument"

    def __repr__(self) -> str:
        kind = "token" if self.token else "AK/SK"
        return f"Credentials({kind}, source={self.source!r})"


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def validate_id(value: object, what: str) -> str:
    """Return ``value`` as an id safe to put in a URL path, or raise a one-line :class:`ConfigError`."""
    text = value.strip() if isinstance(value, str) else ""
    if not _ID_PATTERN.fullmatch(text) or ".." in text:
        raise ConfigError(
            f"{what} {value!r} is not a valid id: use the id shown in the console "
            "(letters, digits, '-', '_' or '.', no '/' or spaces)"
        )
    return text


def normalise_endpoint(url: str, what: str = "endpoint") -> str:
    """Check that ``url`` is ``http(s)://host[:port][/base]`` and return it without a trailing ``/``.

    A query, a fragment (even an empty ``?`` or ``#``) or user info is an error: requests would be sent to
    ``/base?/v2/...``, and a password in the URL would travel with every request.
    """
    text = url.strip() if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or 0 < parts.port < 65536
    except (ValueError, AttributeError):
        parts, port_ok = None, False
    extra = "?" in text or "#" in text or (parts is not None and "@" in parts.netloc)
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok or extra:
        shown = url  # never echo credentials or a token the URL carries
        if isinstance(url, str) and parts is not None and extra:
            shown = redact_url(url) or ""
            if "@" in parts.netloc:
                shown = shown.replace("://", "://***@", 1)
        hint = " without a query, fragment or user name" if extra else ""
        raise ConfigError(
            f"{what} {shown!r} is not a valid base URL: give scheme and host{hint}, e.g. "
            "'https://modelarts.cn-north-4.myhuaweicloud.com' or 'http://127.0.0.1:8080'"
        )
    return text.rstrip("/")


_warned_plaintext: set[str] = set()
_warned_lock = threading.Lock()


def warn_if_plaintext(base_url: str) -> None:
    """Log one warning line (once per host) when credentials would go over plain ``http://`` to a non-loopback
    host: an IAM token is readable on the wire, and a signature can be replayed within its validity."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if parts.scheme != "http" or _is_loopback(host):
        return
    with _warned_lock:
        if host in _warned_plaintext:
            return
        _warned_plaintext.add(host)
    _log.warning("credentials will be sent over plain http:// to %s: use https:// unless this is a trusted "
                 "local proxy", host)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def modelarts_endpoint(endpoint: str | None, region: str | None,
                       environ: Mapping[str, str] | None = None) -> str:
    """The ModelArts base URL: ``endpoint``, else ``region``, else env ``EXPORT_WIDGETS_MODELARTS_ENDPOINT``."""
    if endpoint:
        return normalise_endpoint(endpoint)
    if not region:
        from_env = _env(environ).get(ENV.MODELARTS_ENDPOINT)
        if from_env:
            return normalise_endpoint(from_env, f"env {ENV.MODELARTS_ENDPOINT}")
        raise ConfigError(
            "ModelArtsClient needs region= (e.g. 'cn-north-4') or endpoint= "
            f"(Open Telekom Cloud: endpoint='{OTC_MODELARTS_ENDPOINT}'), or env {ENV.MODELARTS_ENDPOINT}"
        )
    key = region.strip().lower()
    if key in MODELARTS_REGIONS:
        return MODELARTS_REGIONS[key]
    if key.startswith("eu-"):
        raise ConfigError(
            f"region {region!r} is an Open Telekom Cloud region: pass endpoint='{OTC_MODELARTS_ENDPOINT}'"
        )
    raise ConfigError(
        f"unknown ModelArts region {region!r}: pass endpoint= or one of {', '.join(sorted(MODELARTS_REGIONS))}"
    )


def clean_credential(value: str | None, name: str) -> str | None:
    """``value`` without surrounding whitespace (a key read from a file keeps its newline); None if empty.

    Any other character that cannot go in an HTTP header (controls, non-ASCII) is a :class:`ConfigError` naming
    ``name`` (the argument or env var) and never the value: http.client's own error would quote the header.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {type(value).__name__}")
    text = value.strip()
    bad = next((ch for ch in text if not " " <= ch <= "~"), None)
    if bad is not None:
        kind = "a control character" if ord(bad) < 32 or ord(bad) == 127 else "a non-ASCII character"
        raise ConfigError(f"{name} contains {kind}, which cannot be sent in an HTTP header: "
                          "copy the credential again (the value is not shown)")
    return text or None


def resolve_credentials(
    provider: str,
    *,
    ak: str | None = None,
    sk: str | None = None,
    security_token: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Credentials:
    """Pick credentials for ``provider`` ("modelarts" or "qianfan"), explicit first, then the environment.

    Raises :class:`ConfigError` naming the argument and env var to set when a key is missing.
    """
    env = _env(environ)
    token = clean_credential(token, "token=")
    if provider == "modelarts" and token:
        register_secret(token)
        return Credentials(token=token, source="argument")
    ak, sk = clean_credential(ak, "ak="), clean_credential(sk, "sk=")
    if provider == "modelarts":
        ak_var, sk_var, client = ENV.HUAWEI_AK, ENV.HUAWEI_SK, "ModelArtsClient"
        security_token = clean_credential(security_token, "security_token=") or clean_credential(
            env.get(ENV.HUAWEI_SECURITY_TOKEN), f"env {ENV.HUAWEI_SECURITY_TOKEN}")
    else:
        ak_var, sk_var, client = ENV.QIANFAN_AK, ENV.QIANFAN_SK, "QianfanClient"
    source = "argument" if (ak and sk) else "environment"
    ak = ak or clean_credential(env.get(ak_var), f"env {ak_var}")
    sk = sk or clean_credential(env.get(sk_var), f"env {sk_var}")
    missing = [f"{arg}= (or env {var})" for arg, var, value in (("ak", ak_var, ak), ("sk", sk_var, sk))
               if not value]
    if missing:
        hint = " or token=" if provider == "modelarts" else ""
        raise ConfigError(f"{client} has no credentials: pass {' and '.join(missing)}{hint}")
    for secret in (ak, sk, security_token):
        register_secret(secret)
    return Credentials(access_key=ak, secret_key=sk, security_token=security_token, source=source)
