"""Schedules' cron and time zone: refused with a message that says what to fix, described
for people, iterated in the schedule's zone (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backups.cron import CronError, describe, next_runs, normalise_cron, normalise_timezone


def test_a_valid_expression_is_normalised_and_described() -> None:
    assert normalise_cron("  0   1 * *  1-5 ") == "0 1 * * 1-5"
    assert describe("0 1 * * 1-5") == "At 01:00, Monday through Friday"
    assert describe("0 3 * * 0") == "At 03:00, only on Sunday"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 1 * *", "has 4 fields; a schedule needs 5"),
        ("0 0 1 * * *", "has 6 fields"),
        ("61 1 * * *", "is not a valid cron expression"),
        ("a b c d e", "is not a valid cron expression"),
    ],
)
def test_a_bad_expression_says_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        normalise_cron(expression)


def test_time_zones_are_checked_against_the_iana_database() -> None:
    assert normalise_timezone(" Europe/Paris ") == "Europe/Paris"
    with pytest.raises(CronError, match="'Mars/Olympus' is not a known time zone"):
        normalise_timezone("Mars/Olympus")
    with pytest.raises(CronError, match="enter a time zone"):
        normalise_timezone("")


def test_next_runs_follow_the_schedules_time_zone_across_a_dst_change() -> None:
    # 02:30 every day in Paris: on 2026-03-29 (spring forward) 02:30 does not exist.
    after = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)
    runs = next_runs("30 1 * * *", "Europe/Paris", after, 3)
    assert [moment.utcoffset().total_seconds() / 3600 for moment in runs] == [1, 1, 2]
    assert [moment.astimezone(UTC).hour for moment in runs] == [0, 0, 23]
