"""How durations, rates and sizes read on the task pages and in ``task_list`` (pure)."""

from __future__ import annotations

_BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]


def duration(seconds: float | None) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 04 min``, ``3 d 02 h``; an empty string when unknown."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def size(count: float | None) -> str:
    """Bytes in binary units with three significant digits: ``1.50 GiB``."""
    if count is None:
        return ""
    value = float(count)
    for unit in _BINARY_UNITS:
        if abs(value) < 1024 or unit == _BINARY_UNITS[-1]:
            if unit == "B":
                return f"{value:.0f} B"
            decimals = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
            return f"{value:.{decimals}f} {unit}"
        value /= 1024
    return ""  # pragma: no cover


def rate(per_second: float | None, unit: str) -> str:
    """A rate in the task's unit: ``12.3 MiB/s``, ``0.5 items/s``, ``1.2 %/s``."""
    if per_second is None:
        return ""
    if unit == "bytes":
        return f"{size(per_second)}/s"
    if unit == "ratio":
        percent = per_second * 100
        return f"{percent * 60:.2g} %/min" if percent < 0.1 else f"{percent:.2g} %/s"
    return f"{per_second:.2g} items/s"
