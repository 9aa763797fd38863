"""The storage outlook's forecast on synthetic histories whose future is known: linear growth
with noise, and bursty growth (a full every week, deltas every night, a month kept), each
checked against the date the same process really fills the remote (within 10 %)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from backups.outlook import SpaceSample, forecast

GIB = 1 << 30
START = datetime(2026, 1, 1, tzinfo=UTC)


def history(used_at, capacity: int, *, days: int, every: timedelta, start=START):
    """Readings of ``used_at(t)`` every ``every`` for ``days`` days, and the moment after them."""
    samples, moment = [], start
    while moment <= start + timedelta(days=days):
        used = used_at(moment)
        samples.append(SpaceSample(moment, used, capacity - used))
        moment += every
    return samples, samples[-1].at


def truly_full_at(used_at, capacity: int, after: datetime, step=timedelta(hours=1)) -> datetime:
    """When the process itself reaches the capacity (walking forward hour by hour)."""
    moment = after
    while used_at(moment) < capacity:
        moment += step
        assert moment < after + timedelta(days=5000), "never fills"
    return moment


def assert_within_ten_percent(samples, used_at, capacity, now, step=timedelta(hours=1)) -> float:
    outlook = forecast(samples, now=now)
    truth = (truly_full_at(used_at, capacity, now, step) - now).total_seconds()
    guess = (outlook.full_at - now).total_seconds()
    error = abs(guess - truth) / truth
    assert error <= 0.10, f"forecast {guess / 86400:.1f} days, truth {truth / 86400:.1f} days"
    return error


@pytest.mark.parametrize("seed", range(8))
def test_linear_growth_with_noise_is_forecast_within_ten_percent(seed):
    rng = random.Random(seed)
    capacity = 2000 * GIB
    rate = rng.uniform(2, 20) * GIB  # per day
    base = rng.uniform(100, 600) * GIB
    noise = {}

    def used_at(moment):
        days = (moment - START).total_seconds() / 86400
        # ±1 % of a day's growth of jitter (other files on the share, a run in progress).
        jitter = noise.setdefault(moment, rng.uniform(-0.01, 0.01) * rate)
        return int(base + rate * days + jitter)

    samples, now = history(used_at, capacity, days=45, every=timedelta(hours=1))
    outlook = forecast(samples, now=now)
    assert outlook.growth_per_day == pytest.approx(rate, rel=0.02)
    assert_within_ten_percent(samples, used_at, capacity, now)


@pytest.mark.parametrize("seed", range(12))
def test_bursty_growth_weekly_fulls_nightly_deltas_is_forecast_within_ten_percent(seed):
    """A delta job: a full every Sunday that grows as the VMs grow, deltas every night, four
    weeks kept (each full lets the oldest week go). Sampled every few hours from a random
    day of the week, so every phase of the bursts is tried."""
    rng = random.Random(seed)
    capacity = 3000 * GIB
    full_size, delta_size = rng.uniform(80, 150) * GIB, rng.uniform(2, 8) * GIB
    data_growth = rng.uniform(0.5, 2) * GIB  # per day: the VMs' own data grows
    offset = timedelta(days=rng.uniform(0, 7), hours=rng.uniform(0, 24))

    def used_at(moment):
        days = (moment - START + offset).total_seconds() / 86400
        total = 50 * GIB
        for day in range(int(days) + 1):
            if day + 0.1 > days:  # runs at 02:24
                break
            week_full = full_size + data_growth * day
            if day % 7 == 0:
                total += week_full
                if day >= 28:  # the full of four weeks ago and its deltas go
                    old = full_size + data_growth * (day - 28)
                    total -= old + 6 * delta_size
            else:
                total += delta_size
        return int(total)

    samples, now = history(used_at, capacity, days=56, every=timedelta(hours=6))
    # The truth to within 4 hours (of months).
    assert_within_ten_percent(samples, used_at, capacity, now, step=timedelta(hours=4))


def test_too_little_history_says_why_and_a_shrinking_remote_never_fills():
    one = [SpaceSample(START, 10, 90)]
    outlook = forecast(one, now=START)
    assert outlook.growth_per_day is None and outlook.full_at is None
    assert outlook.reason == (
        "not enough history yet: 1 reading(s) over 0 min; a forecast needs 3 over 10 min at least"
    )
    shrinking = [SpaceSample(START + timedelta(hours=h), 100 - h, h) for h in range(5)]
    outlook = forecast(shrinking, now=START + timedelta(hours=4))
    assert outlook.growth_per_day == pytest.approx(-24) and outlook.full_at is None
    assert outlook.reason == "the space used does not grow"


def test_only_the_window_counts():
    """A burst two months ago (a migration copied in once) does not set next month's rate."""
    samples = [
        SpaceSample(START, 0, 1000 * GIB),
        SpaceSample(START + timedelta(hours=1), 500 * GIB, 500 * GIB),
    ]
    for day in range(60, 91):
        used = 500 * GIB + (day - 60) * GIB
        samples.append(SpaceSample(START + timedelta(days=day), used, 1000 * GIB - used))
    outlook = forecast(samples, now=START + timedelta(days=90), window_days=30)
    assert outlook.growth_per_day == pytest.approx(GIB, rel=1e-6)
    assert outlook.days_left(START + timedelta(days=90)) == pytest.approx(470, rel=1e-6)
