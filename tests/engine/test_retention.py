"""Retention's rule, pure (backups/engine/retention.py, docs/maintenance.md §2): the newest N,
then the newest backup of each day, ISO week, month and year beyond them, in the schedule's
time zone, with Proxmox Backup Server's counting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backups.engine.layout import format_timestamp
from backups.engine.retention import RetentionPolicy, decide


def ts(text: str) -> str:
    """``"2026-05-03 23:30"`` (UTC) as a backup's ``<ts>``."""
    return format_timestamp(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC))


def kept(stamps: list[str], policy: RetentionPolicy) -> list[str]:
    return [v.timestamp for v in decide(stamps, policy) if v.keep]


def test_the_newest_n_are_kept_and_the_others_dropped_with_the_reason():
    stamps = [ts(f"2026-05-0{day} 01:00") for day in range(1, 6)]
    verdicts = decide(stamps, RetentionPolicy(keep_last=2))
    assert [(v.timestamp, v.keep) for v in verdicts] == [
        (stamps[0], False),
        (stamps[1], False),
        (stamps[2], False),
        (stamps[3], True),
        (stamps[4], True),
    ]
    assert verdicts[0].reason == "dropped: older than the newest 2"
    assert verdicts[4].reason == "kept: one of the newest 2"


def test_the_newest_backup_of_a_day_represents_it():
    """Three backups a day for three days, keep the newest 1 and 2 more days: the newest of
    each earlier day stays (PBS's rule; XO would keep the oldest)."""
    stamps = [ts(f"2026-05-0{day} {hour:02}:00") for day in (1, 2, 3) for hour in (2, 10, 18)]
    verdicts = {v.timestamp: v for v in decide(stamps, RetentionPolicy(keep_last=1, daily=2))}
    assert kept(stamps, RetentionPolicy(keep_last=1, daily=2)) == [
        ts("2026-05-01 18:00"),
        ts("2026-05-02 18:00"),
        ts("2026-05-03 18:00"),
    ]
    assert verdicts[ts("2026-05-02 18:00")].reason == "kept: the newest of day 2026-05-02 (daily)"
    assert verdicts[ts("2026-05-02 10:00")].reason == (
        "dropped: a newer backup represents day 2026-05-02 (daily)"
    )
    # The day keep_last already covers (05-03) is not counted again: two more days are kept.
    assert verdicts[ts("2026-05-03 10:00")].reason == (
        "dropped: older than the newest 1 and in no long-term period kept"
    )


def test_periods_are_days_of_the_schedules_time_zone():
    """23:30 UTC on May 3 is May 4 in Paris: in Paris time the two backups share a day."""
    stamps = [ts("2026-05-03 23:30"), ts("2026-05-04 06:00"), ts("2026-05-05 06:00")]
    utc = RetentionPolicy(keep_last=1, daily=5)
    paris = RetentionPolicy(keep_last=1, daily=5, timezone="Europe/Paris")
    assert kept(stamps, utc) == stamps
    assert kept(stamps, paris) == stamps[1:]


def test_weeks_are_iso_weeks_monday_first_in_the_time_zone():
    # Sunday 2026-05-03 22:30 UTC is Monday 00:30 in Paris: week 19 there, week 18 in UTC.
    stamps = [ts("2026-05-03 22:30"), ts("2026-05-04 10:00"), ts("2026-05-20 10:00")]
    assert kept(stamps, RetentionPolicy(keep_last=1, weekly=4)) == stamps
    verdicts = decide(stamps, RetentionPolicy(keep_last=1, weekly=4, timezone="Europe/Paris"))
    assert [v.keep for v in verdicts] == [False, True, True]
    assert verdicts[1].reason == "kept: the newest of week 2026-W19 (weekly)"


def test_monthly_and_yearly_buckets_count_periods_an_earlier_rule_does_not_cover():
    """Weekly backups for two and a half years. The year 2025 is represented by the month of
    December kept by the monthly rule, so the yearly rule keeps 2024 and finds no third year."""
    start = datetime(2024, 1, 15, 1, 0, tzinfo=UTC)
    stamps = [format_timestamp(start + timedelta(days=7 * n)) for n in range(130)]
    policy = RetentionPolicy(keep_last=3, weekly=2, monthly=6, yearly=2)
    assert [(v.timestamp, v.reason) for v in decide(stamps, policy) if v.keep] == [
        ("20241230T010000Z", "kept: the newest of year 2024 (yearly)"),
        ("20251229T010000Z", "kept: the newest of month 2025-12 (monthly)"),
        ("20260126T010000Z", "kept: the newest of month 2026-01 (monthly)"),
        ("20260223T010000Z", "kept: the newest of month 2026-02 (monthly)"),
        ("20260330T010000Z", "kept: the newest of month 2026-03 (monthly)"),
        ("20260427T010000Z", "kept: the newest of month 2026-04 (monthly)"),
        ("20260525T010000Z", "kept: the newest of month 2026-05 (monthly)"),
        ("20260608T010000Z", "kept: the newest of week 2026-W24 (weekly)"),
        ("20260615T010000Z", "kept: the newest of week 2026-W25 (weekly)"),
        ("20260622T010000Z", "kept: one of the newest 3"),
        ("20260629T010000Z", "kept: one of the newest 3"),
        ("20260706T010000Z", "kept: one of the newest 3"),
    ]


def test_no_retention_keeps_everything_and_bad_policies_are_refused():
    stamps = [ts("2026-05-01 01:00"), ts("2026-05-02 01:00")]
    assert kept(stamps, RetentionPolicy(keep_last=0)) == stamps
    with pytest.raises(ValueError, match="retention daily must be 0 or more, not -1"):
        RetentionPolicy(keep_last=1, daily=-1)
    with pytest.raises(ValueError, match="retention time zone 'Mars/Olympus' is unknown"):
        RetentionPolicy(keep_last=1, timezone="Mars/Olympus")


def test_describe():
    assert RetentionPolicy(
        keep_last=7, daily=7, monthly=12, timezone="Europe/Paris"
    ).describe() == (
        "the newest 7, and one per day for 7 days, per month for 12 months (Europe/Paris)"
    )
    assert RetentionPolicy(keep_last=0).describe() == "everything (no retention)"


moments = st.lists(
    st.integers(min_value=1_700_000_000, max_value=1_800_000_000).map(
        lambda s: format_timestamp(s - s % 60)
    ),
    min_size=0,
    max_size=40,
    unique=True,
)
policies = st.builds(
    RetentionPolicy,
    keep_last=st.integers(1, 5),
    daily=st.integers(0, 4),
    weekly=st.integers(0, 3),
    monthly=st.integers(0, 3),
    yearly=st.integers(0, 2),
    timezone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
)


@settings(max_examples=300, deadline=None)
@given(stamps=moments, policy=policies)
def test_retention_keeps_the_newest_bounds_what_it_keeps_and_is_idempotent(stamps, policy):
    verdicts = decide(stamps, policy)
    assert [v.timestamp for v in verdicts] == sorted(stamps)
    keep = [v.timestamp for v in verdicts if v.keep]
    assert set(sorted(stamps)[-policy.keep_last :]) <= set(keep)
    bound = policy.keep_last + policy.daily + policy.weekly + policy.monthly + policy.yearly
    assert len(keep) <= bound
    assert all(v.reason.startswith("kept: " if v.keep else "dropped: ") for v in verdicts)
    # Rule 3: applied again to what it kept, retention keeps all of it.
    assert kept(keep, policy) == keep
