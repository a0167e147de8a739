"""Tolerant field readers for vendor JSON: wrong types become None, never an exception.

Vendor docs and reality disagree (``train_sample_ratio`` documented as a string, sent as a number; Qianfan
``progress`` as ``"45%"`` or ``0``), so every reader accepts the plausible spellings and drops the rest.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone, tzinfo
from typing import Any

__all__ = ["as_bool", "as_count", "as_float", "as_percent", "as_str", "from_epoch_ms", "from_local_text"]


def as_str(value: Any) -> str | None:
    """Strings (and numbers) as text; None, empty and containers as None."""
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return None
    text = str(value)
    return text if text else None


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
        return datetime.fromtimestamp(number / 1000.0, tz=timezone.utc)
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
        return parsed.replace(tzinfo=zone)
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
