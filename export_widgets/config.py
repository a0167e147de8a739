"""Provider-neutral checks of endpoints, ids and credentials: explicit argument > environment > default.

Each provider module names its own env vars (the official SDKs' names, so a machine set up for them works).
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
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .errors import ConfigError
from .redact import redact_url, register_secret

if TYPE_CHECKING:
    from .providers.base import EnvNames

__all__ = [
    "Credentials",
    "clean_credential",
    "normalise_endpoint",
    "resolve_credentials",
    "validate_id",
    "warn_if_plaintext",
]

_log = logging.getLogger("export_widgets")


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
    client: str,
    env_names: EnvNames,
    *,
    ak: str | None = None,
    sk: str | None = None,
    security_token: str | None = None,
    token: str | None = None,
    environ: Mapping[str, str] | None = None,
    token_allowed: bool = False,
) -> Credentials:
    """Pick credentials for a provider client, explicit first, then the provider's environment variables.

    ``client`` names the provider in messages (``"ModelArts"``); ``env_names`` are the variables it reads.
    Raises :class:`ConfigError` naming the argument and env var to set when a key is missing.
    """
    env = _env(environ)
    token = clean_credential(token, "token=")
    if token_allowed and token:
        register_secret(token)
        return Credentials(token=token, source="argument")
    ak, sk = clean_credential(ak, "ak="), clean_credential(sk, "sk=")
    if env_names.security_token:
        security_token = clean_credential(security_token, "security_token=") or clean_credential(
            env.get(env_names.security_token), f"env {env_names.security_token}")
    source = "argument" if (ak and sk) else "environment"
    ak = ak or clean_credential(env.get(env_names.access_key), f"env {env_names.access_key}")
    sk = sk or clean_credential(env.get(env_names.secret_key), f"env {env_names.secret_key}")
    missing = [f"{arg}= (or env {var})" for arg, var, value in
               (("ak", env_names.access_key, ak), ("sk", env_names.secret_key, sk)) if not value]
    if missing:
        hint = " or token=" if token_allowed else ""
        raise ConfigError(f"{client}Client has no credentials: pass {' and '.join(missing)}{hint}")
    for secret in (ak, sk, security_token):
        register_secret(secret)
    return Credentials(access_key=ak, secret_key=sk, security_token=security_token, source=source)
