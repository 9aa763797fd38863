"""When will a remote be full? Growth per day and the date it fills, from its space history.

Pure (no database, no Django): samples in, a forecast out, so that it is tested on synthetic
histories (tests/backups/test_outlook.py). How it decides:

1. keep the samples of the last ``window_days`` (older growth says little about next month);
2. fit a straight line through them by least squares (used bytes against time). Backups grow
   in bursts — a full every week, deltas every night, retention freeing space after the
   fulls — and a fit over several bursts follows their average, where the two ends of the
   history alone would swing with the phase of the last burst;
3. the growth per day is the line's slope; the remote is full when ``free`` runs out at that
   rate, counted from the last sample (the present is known exactly: only the rate is a
   guess);
4. no forecast (with the reason) when the history is too short to say anything (fewer than
   ``min_samples`` or spanning less than ``min_span``), and "never" when the space does not
   grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DAY = 86400.0


@dataclass(frozen=True)
class SpaceSample:
    """One reading of a remote's filesystem: when, and the bytes used and free then."""

    at: datetime
    used: int
    free: int


@dataclass(frozen=True)
class Forecast:
    """The outlook of one remote. ``growth_per_day`` is None when nothing can be said (see
    ``reason``); ``full_at`` is None when the space does not grow."""

    growth_per_day: float | None
    full_at: datetime | None
    reason: str
    samples: int
    span: timedelta

    def days_left(self, now: datetime) -> float | None:
        if self.full_at is None:
            return None
        return max(0.0, (self.full_at - now).total_seconds() / DAY)


def forecast(
    samples: Sequence[SpaceSample],
    *,
    now: datetime,
    window_days: float = 30,
    min_samples: int = 3,
    min_span: timedelta = timedelta(minutes=10),
) -> Forecast:
    """The growth per day and the date the remote is full (see the module docstring)."""
    since = now - timedelta(days=window_days)
    recent = sorted((s for s in samples if since <= s.at <= now), key=lambda s: s.at)
    span = recent[-1].at - recent[0].at if recent else timedelta(0)
    if len(recent) < min_samples or span < min_span:
        return Forecast(
            None,
            None,
            f"not enough history yet: {len(recent)} reading(s) over {_words(span)}; "
            f"a forecast needs {min_samples} over {_words(min_span)} at least",
            len(recent),
            span,
        )
    slope = _slope(
        [(s.at - recent[0].at).total_seconds() for s in recent], [s.used for s in recent]
    )
    per_day = slope * DAY
    last = recent[-1]
    if per_day <= 0:
        return Forecast(per_day, None, "the space used does not grow", len(recent), span)
    seconds_left = last.free / slope
    try:
        full_at = last.at + timedelta(seconds=seconds_left)
    except OverflowError:  # centuries away
        return Forecast(per_day, None, "it grows too slowly to ever fill", len(recent), span)
    return Forecast(per_day, full_at, "", len(recent), span)


def _slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs (xs not all equal)."""
    count = len(xs)
    mean_x = sum(xs) / count
    mean_y = sum(ys) / count
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


def _words(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.1f} days"
