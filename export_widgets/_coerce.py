"""Tolerant field readers for vendor JSON: wrong types become None, never an exception.

Vendor docs and reality disagree (``train_sample_ratio`` documented as a string, sent as a number; Qianfan
``progress`` as ``"45%"`` or ``0``), so every reader accepts the plausible spellings and drops the rest.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo
from typing import Any

__all__ = [
    "as_bool", "as_count", "as_float", "as_list", "as_percent", "as_str", "from_epoch_ms", "from_local_text",
    "replace_surrogates", "valid_text",
]

# What pandas' datetime64[ns] can hold (1677-09-21 .. 2262-04-11), with a day to spare at each end: a time
# outside it (Go's zero time "0001-01-01", year 9999) becomes missing, and the raw value stays in ``.raw``.
_EARLIEST = datetime(1677, 9, 23, tzinfo=timezone.utc)
_LATEST = datetime(2262, 4, 10, tzinfo=timezone.utc)


def valid_text(text: str) -> str:
    """``text`` encodable as UTF-8: a lone UTF-16 surrogate (``"\\ud83d"``, legal in JSON) becomes U+FFFD.

    Such a string kills Jupyter's message encoding and ``to_csv``; a proper surrogate *pair* is joined into
    its character.
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def replace_surrogates(value: Any) -> Any:
    """Decoded JSON with :func:`valid_text` applied to every string, keys included (a copy only if needed)."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {valid_text(key): replace_surrogates(item) for key, item in value.items()}
    return value


def as_str(value: Any) -> str | None:
    """Strings (and numbers) as valid text; None, empty and containers as None."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    text = valid_text(str(value))
    return text if text else None


def as_list(value: Any) -> list[Any]:
    """A JSON array as a list; anything else (a number, a string, an object) as an empty list."""
    return value if isinstance(value, list) else []


def _in_range(moment: datetime) -> datetime | None:
    try:
        return moment if _EARLIEST <= moment.astimezone(timezone.utc) <= _LATEST else None
    except (OverflowError, ValueError):  # astimezone of 0001-01-01 in a zone east of UTC
        return None


def as_float(value: Any) -> float | None:
    """A finite float from a number or numeric string (``"45%"`` allowed), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
        if not value:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def as_percent(value: Any) -> float | None:
    """A progress percentage in [0, 100]; slightly out-of-range values are clamped, wild ones dropped."""
    number = as_float(value)
    if number is None or not -1.0 <= number <= 101.0:
        return None
    return min(100.0, max(0.0, number))


def as_count(value: Any) -> int | None:
    """A non-negative integer count from an int, integral float or digit string, else None."""
    number = as_float(value)
    if number is None or number < 0 or number != int(number) or number > 2**53:
        return None
    return int(number)


def as_bool(value: Any) -> bool | None:
    """Booleans, and the strings ``"true"``/``"false"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def from_epoch_ms(value: Any) -> datetime | None:
    """UTC datetime from epoch milliseconds (ModelArts ``create_time``/``update_time``)."""
    number = as_float(value)
    if number is None or number <= 0:
        return None
    try:
        return _in_range(datetime.fromtimestamp(number / 1000.0, tz=timezone.utc))
    except (OverflowError, OSError, ValueError):
        return None


def from_local_text(value: Any, zone: tzinfo) -> datetime | None:
    """Aware datetime from ``YYYY-MM-DD hh:mm:ss`` in ``zone`` (Qianfan times carry no zone)."""
    text = as_str(value)
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f"):
        try:
            parsed = datetime.strptime(text.strip(), fmt)
        except ValueError:
            continue
        return _in_range(parsed.replace(tzinfo=zone))
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=zone))
