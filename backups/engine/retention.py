"""Which backups of one schedule a remote keeps (pure; docs/maintenance.md §2).

A schedule keeps its newest ``keep_last`` backups, then optionally one backup per period for
the last ``daily`` days, ``weekly`` ISO weeks, ``monthly`` months and ``yearly`` years, periods
taken in the schedule's time zone. The backup that represents a period is its **newest** one
(Proxmox Backup Server's rule, not Xen Orchestra's oldest): the copy of a finished period is
its state at the end, and the period still running never holds a backup beyond those the
newest ``keep_last`` already keep.

The rules apply in that order, as PBS's ``prune`` does: a period already represented by a
backup kept by an earlier rule is not counted again, so ``daily: 7`` keeps seven *more* days
than ``keep_last`` covers; within a rule, the older backups of a period already represented
are dropped and no later rule takes them. Everything no rule keeps is dropped.

Dropping only ever deletes a backup's metadata; its VHD files are merged into the kept
backups that need them, or deleted, by the clean pass (``clean.py``). So a delta a kept backup
needs is never lost, whatever this module decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .layout import parse_timestamp

#: Long-term buckets, in the order they apply, with the period's key and its name.
BUCKETS = (
    ("daily", "%Y-%m-%d", "day"),
    ("weekly", "%G-W%V", "week"),
    ("monthly", "%Y-%m", "month"),
    ("yearly", "%Y", "year"),
)


@dataclass(frozen=True)
class RetentionPolicy:
    """What one schedule keeps on each remote. ``keep_last`` 0: retention is not applied
    (the backups of a run that no schedule fired are kept until someone deletes them)."""

    keep_last: int
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        for name in ("keep_last", "daily", "weekly", "monthly", "yearly"):
            if getattr(self, name) < 0:
                raise ValueError(f"retention {name} must be 0 or more, not {getattr(self, name)}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"retention time zone {self.timezone!r} is unknown") from None

    @property
    def applies(self) -> bool:
        return self.keep_last > 0

    def describe(self) -> str:
        """ "the newest 7, and one per day for 7 days, per month for 12 months (Europe/Paris)"."""
        if not self.applies:
            return "everything (no retention)"
        parts = [f"the newest {self.keep_last}"]
        buckets = [
            f"per {period} for {count} {period}{'s' if count != 1 else ''}"
            for (name, _key, period), count in zip(
                BUCKETS, (self.daily, self.weekly, self.monthly, self.yearly), strict=True
            )
            if count
        ]
        if buckets:
            parts.append("one " + ", ".join(buckets) + f" ({self.timezone})")
        return ", and ".join(parts)


@dataclass(frozen=True)
class Verdict:
    """What retention says of one backup (by its ``<ts>``)."""

    timestamp: str
    keep: bool
    reason: str


def _moment(timestamp: str | datetime) -> datetime:
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return parse_timestamp(timestamp)


def decide(timestamps: Sequence[str], policy: RetentionPolicy) -> list[Verdict]:
    """A verdict per backup ``<ts>`` of one schedule, oldest first (see the module doc).

    Steps: sort newest first; keep the newest ``keep_last``; for each bucket in order, walk
    the backups not decided yet, newest first, skipping periods an earlier rule already
    covers, keeping the first backup of each new period until ``count`` periods are kept and
    dropping the older ones of a period already kept; drop whatever is left.
    """
    ordered = sorted(set(timestamps), reverse=True)
    if not policy.applies:
        return [Verdict(ts, True, "kept: this schedule applies no retention") for ts in ordered][
            ::-1
        ]
    zone = ZoneInfo(policy.timezone)
    local = {ts: _moment(ts).astimezone(zone) for ts in ordered}
    verdicts: dict[str, Verdict] = {}
    for ts in ordered[: policy.keep_last]:
        verdicts[ts] = Verdict(ts, True, f"kept: one of the newest {policy.keep_last}")
    counts = (policy.daily, policy.weekly, policy.monthly, policy.yearly)
    for (name, key, period), count in zip(BUCKETS, counts, strict=True):
        if not count:
            continue
        covered = {local[ts].strftime(key) for ts, verdict in verdicts.items() if verdict.keep}
        kept_periods: set[str] = set()
        for ts in ordered:
            if ts in verdicts:
                continue
            label = local[ts].strftime(key)
            if label in covered:
                continue
            if label in kept_periods:
                verdicts[ts] = Verdict(
                    ts,
                    False,
                    f"dropped: a newer backup represents {period} {label} ({name})",
                )
                continue
            if len(kept_periods) >= count:
                break
            kept_periods.add(label)
            verdicts[ts] = Verdict(ts, True, f"kept: the newest of {period} {label} ({name})")
    for ts in ordered:
        if ts not in verdicts:
            why = f"dropped: older than the newest {policy.keep_last}"
            if any(counts):
                why += " and in no long-term period kept"
            verdicts[ts] = Verdict(ts, False, why)
    return [verdicts[ts] for ts in reversed(ordered)]
