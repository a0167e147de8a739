"""Provider-neutral checks of endpoints, ids and credentials: explicit argument > environment > default.

Each provider module names its own env vars (the official SDKs' names, so a machine set up for them works).
Secrets live in :class:`Credentials` with ``repr`` masked; nothing here prints or logs them.
"""

from __future__ import annotations

import os
import re
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
    "normalise_endpoint",
    "resolve_credentials",
    "validate_id",
]


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
    """Check that ``url`` is ``http(s)://host[:port][/base]`` and return it without a trailing ``/``."""
    try:
        parts = urlsplit(url.strip())
        port_ok = parts.port is None or 0 < parts.port < 65536
    except (ValueError, AttributeError):
        parts, port_ok = None, False
    if not parts or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok \
            or parts.query or parts.fragment or parts.username or parts.password:
        shown = url  # never echo credentials or a token the URL carries
        if isinstance(url, str) and parts is not None and (parts.username or parts.password or parts.query
                                                           or parts.fragment):
            shown = redact_url(url) or ""
            if parts.username or parts.password:
                shown = shown.replace("://", "://***@", 1)
        raise ConfigError(
            f"{what} {shown!r} is not a valid base URL: give scheme and host, e.g. "
            "'https://modelarts.cn-north-4.myhuaweicloud.com' or 'http://127.0.0.1:8080'"
        )
    return url.strip().rstrip("/")


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
    if token_allowed and token:
        register_secret(token)
        return Credentials(token=token, source="argument")
    if env_names.security_token:
        security_token = security_token or env.get(env_names.security_token) or None
    source = "argument" if (ak and sk) else "environment"
    ak = ak or env.get(env_names.access_key) or None
    sk = sk or env.get(env_names.secret_key) or None
    missing = [f"{arg}= (or env {var})" for arg, var, value in
               (("ak", env_names.access_key, ak), ("sk", env_names.secret_key, sk)) if not value]
    if missing:
        hint = " or token=" if token_allowed else ""
        raise ConfigError(f"{client}Client has no credentials: pass {' and '.join(missing)}{hint}")
    for secret in (ak, sk, security_token):
        register_secret(secret)
    return Credentials(access_key=ak, secret_key=sk, security_token=security_token, source=source)
