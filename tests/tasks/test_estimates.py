"""Estimates on synthetic histories: they follow the current speed and admit what they don't know."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.estimates import (
    GRACE_SECONDS,
    MIN_SIGNAL_SECONDS,
    STALL_AFTER_SECONDS,
    WINDOW_SECONDS,
    Track,
    append_sample,
    done_at,
    estimate,
    naive_remaining,
)

START = 1_700_000_000.0


def history_of(rates: list[float], step: float = 1.0) -> list[tuple[float, float]]:
    """Samples every ``step`` seconds of a task going at ``rates[i]`` units/s during second i."""
    samples, done = [], 0.0
    for i, rate in enumerate(rates):
        done += rate * step
        samples.append((START + (i + 1) * step, done))
    return samples


def running(history: list[tuple[float, float]], total: float) -> Track:
    return Track(started=START, total=total, done=history[-1][1], history=history)


def relative_error(estimated: float | None, truth: float) -> float:
    assert estimated is not None
    return abs(estimated - truth) / truth


rates = st.floats(min_value=1e3, max_value=1e9)


@given(rate=rates, seconds=st.integers(min_value=8, max_value=900), left=st.floats(0.1, 50))
def test_constant_speed_is_estimated_within_two_percent(rate, seconds, left):
    history = history_of([rate] * seconds)
    done = history[-1][1]
    total = done + left * done
    now = history[-1][0]
    result = estimate(running(history, total), now)
    assert relative_error(result.remaining, (total - done) / rate) < 0.02
    assert relative_error(result.rate, rate) < 0.02
    assert result.eta == now + result.remaining
    assert not result.stalled


@settings(max_examples=200)
@given(
    rate=rates,
    before=st.integers(min_value=int(2 * WINDOW_SECONDS), max_value=1200),
    factor=st.sampled_from([0.1, 0.2, 0.25, 0.5, 2.0, 3.0, 5.0, 10.0]),
    left_seconds=st.floats(min_value=60, max_value=10_000),
)
def test_after_a_speed_change_the_error_falls_within_the_window_where_xo_does_not(
    rate, before, factor, left_seconds
):
    after = int(WINDOW_SECONDS) + 1
    history = history_of([rate] * before + [rate * factor] * after)
    done = history[-1][1]
    total = done + rate * factor * left_seconds
    now = history[-1][0]
    truth = left_seconds
    ours = estimate(running(history, total), now).remaining
    xo = naive_remaining(START, now, done / total)
    assert relative_error(ours, truth) < 0.05
    assert relative_error(xo, truth) > 0.3


@given(
    rate=rates,
    moving=st.integers(min_value=10, max_value=600),
    pause=st.floats(min_value=0, max_value=STALL_AFTER_SECONDS * 3),
)
def test_a_stalled_task_shows_no_remaining_time_and_a_pause_never_counts_down(rate, moving, pause):
    history = history_of([rate] * moving)
    done = history[-1][1]
    track = running(history, total=done * 3)
    at_pause = estimate(track, history[-1][0])
    later = estimate(track, history[-1][0] + pause)
    if pause >= STALL_AFTER_SECONDS or pause > WINDOW_SECONDS + GRACE_SECONDS:
        assert later.stalled
        assert later.remaining is None and later.eta is None
        assert later.rate == 0
    else:
        assert not later.stalled
        # Nothing moved: the end cannot have come closer than the pause itself allows.
        assert later.eta >= at_pause.eta - 1e-6 * at_pause.eta
        if pause > GRACE_SECONDS + 1:
            assert later.remaining > at_pause.remaining - pause


@given(
    start_rate=rates, growth=st.floats(min_value=0.01, max_value=0.2), seconds=st.integers(60, 900)
)
def test_an_accelerating_task_is_estimated_closer_than_elapsed_times_remaining_ratio(
    start_rate, growth, seconds
):
    per_second = [start_rate * (1 + growth * i) for i in range(seconds)]
    history = history_of(per_second)
    done = history[-1][1]
    total = done * 2
    # The truth if the speed keeps growing at the same pace.
    left, remaining, i = total - done, 0.0, seconds
    while left > 0:
        speed = start_rate * (1 + growth * i)
        remaining += min(1.0, left / speed)
        left -= speed
        i += 1
    now = history[-1][0]
    ours = estimate(running(history, total), now).remaining
    xo = naive_remaining(START, now, done / total)
    assert relative_error(ours, remaining) < relative_error(xo, remaining)


@given(
    rate=rates,
    noise=st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=60, max_size=400),
)
def test_noisy_speed_is_averaged_over_the_window(rate, noise):
    per_second = [rate * (1 + n) for n in noise]
    history = history_of(per_second)
    done = history[-1][1]
    total = done * 4
    recent = per_second[-int(WINDOW_SECONDS) :]
    mean_recent = sum(recent) / len(recent)
    result = estimate(running(history, total), history[-1][0])
    assert relative_error(result.rate, mean_recent) < 0.01
    assert relative_error(result.remaining, (total - done) / mean_recent) < 0.01


@given(
    rate=rates,
    every=st.integers(min_value=2, max_value=12),
    steps=st.integers(min_value=5, max_value=80),
    since_step=st.floats(min_value=0, max_value=1),
)
def test_stepped_progress_counts_down_between_steps_without_a_saw_tooth(
    rate, every, steps, since_step
):
    # Like XAPI: progress jumps every `every` seconds, one sample per jump.
    history = [(START + every * (i + 1), rate * every * (i + 1)) for i in range(steps)]
    done = history[-1][1]
    total = done * 2
    now = history[-1][0] + since_step * every
    truth = (total - done) / rate - since_step * every
    result = estimate(running(history, total), now)
    assert result.remaining is not None
    assert abs(result.remaining - truth) < 0.1 * (total - done) / rate


def test_nothing_is_estimated_before_enough_signal():
    history = history_of([100.0] * int(MIN_SIGNAL_SECONDS - 1))
    result = estimate(running(history, total=10_000), history[-1][0])
    assert result.remaining is None and result.rate is None and result.eta is None
    assert result.progress == history[-1][1] / 10_000
    nothing_moved = Track(started=START, total=10_000, done=0, history=[])
    later = estimate(nothing_moved, START + 300)
    assert later.remaining is None and not later.stalled
    assert later.elapsed == 300


def test_unknown_total_gives_a_rate_but_no_remaining_time():
    history = history_of([50.0] * 20)
    result = estimate(Track(started=START, total=None, done=1000, history=history), START + 20)
    assert result.rate == 50.0
    assert result.remaining is None and result.progress is None


def test_a_finished_task_has_its_average_rate_and_nothing_left():
    history = history_of([10.0] * 10)
    failed = Track(started=START, total=400, done=100, history=history, ended=START + 10)
    result = estimate(failed, START + 99)
    assert result.remaining == 0 and result.eta == START + 10
    assert result.elapsed == 10 and result.rate == 10
    assert result.progress == 0.25


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=10**12), min_size=2, max_size=12),
    rate=rates,
    seconds=st.integers(min_value=40, max_value=600),
    first_done=st.booleans(),
)
def test_a_parent_estimate_covers_its_children_not_started(sizes, rate, seconds, first_done):
    """Children run one at a time; the parent's remaining time covers all of them."""
    running_size = max(sizes[1], int(rate * seconds) + 1)
    children = []
    start = START
    if first_done:
        took = sizes[0] / rate
        children.append(
            Track(
                started=start,
                total=sizes[0],
                done=sizes[0],
                history=[(start + took, float(sizes[0]))],
                ended=start + took,
            )
        )
        start += took
    history = [(start + i + 1, rate * (i + 1)) for i in range(seconds)]
    children.append(Track(started=start, total=running_size, done=history[-1][1], history=history))
    pending = sizes[2:]
    children += [Track(started=None, total=size) for size in pending]
    parent = Track(started=START, children=children)
    now = history[-1][0]
    left = (running_size - history[-1][1]) + sum(pending)
    result = estimate(parent, now)
    whole = (sizes[0] if first_done else 0) + running_size + sum(pending)
    assert abs(result.progress - (whole - left) / whole) < 1e-9
    assert relative_error(result.remaining, left / rate) < 0.02


def test_a_parent_of_children_without_sizes_counts_them():
    ended = [Track(started=START + i * 10, ended=START + (i + 1) * 10) for i in range(3)]
    parent = Track(started=START, children=[*ended, Track(started=START + 30), Track(started=None)])
    result = estimate(parent, START + 31)
    assert result.progress == 3 / 5
    # Three items in the last 30 s: one every 10 s, two left.
    assert result.rate == 0.1
    assert abs(result.remaining - 20) < 1.5


def test_a_parent_ignores_unsized_children_beside_sized_ones():
    snapshot = Track(started=START, ended=START + 5)
    transfer = Track(started=START + 5, total=1000, done=500, history=history_of([25.0] * 20))
    result = estimate(Track(started=START, children=[snapshot, transfer]), START + 20)
    assert result.progress == 0.5


def test_a_declared_total_larger_than_the_children_so_far_is_kept():
    disk = Track(started=START, total=1000, done=500, history=history_of([25.0] * 20))
    vm = Track(started=START, total=4000, children=[disk])
    assert estimate(vm, START + 20).progress == 500 / 4000


def test_history_stays_bounded_and_keeps_both_ends():
    history: list[tuple[float, float]] = []
    for i in range(5000):
        history = append_sample(history, START + i, float(i), max_samples=100)
    assert len(history) <= 100
    assert history[0] == (START, 0.0)
    assert history[-1] == (START + 4999, 4999.0)
    assert [t for t, _ in history] == sorted(t for t, _ in history)
    # The recent window stays dense: every one of the last 30 s is there.
    assert [t for t, _ in history[-30:]] == [START + i for i in range(4970, 5000)]


def test_a_second_sample_at_the_same_time_replaces_the_first():
    history = append_sample([(START, 1.0)], START, 5.0)
    assert history == [(START, 5.0)]


def test_done_at_interpolates_between_samples_and_holds_after_the_last():
    history = [(10.0, 0.0), (20.0, 100.0)]
    assert done_at(history, 5) == 0
    assert done_at(history, 15) == 50
    assert done_at(history, 99) == 100


def test_xo_formula_is_the_one_from_the_reference():
    assert naive_remaining(0, 100, 0.25) == 300
    assert naive_remaining(0, 100, 0) is None


def test_a_history_that_begins_late_does_not_count_earlier_progress_in_the_window():
    # The watcher came up 200 s into an export already at 50 %, then saw 0.1 %/s.
    history = [(START + 200 + i, 0.5 + 0.001 * i) for i in range(0, 11)]
    track = Track(started=START, total=1.0, done=history[-1][1], history=history)
    result = estimate(track, START + 210)
    # Window [180, 210]: 20 s of the average since the start (0.25 %/s), 10 s at 0.1 %/s.
    assert result.rate == pytest.approx((0.0025 * 20 + 0.001 * 10) / 30)
    assert result.rate < 0.01  # not 50 % in 30 s


def test_a_finished_parent_has_its_average_rate():
    disks = [
        Track(started=START, total=100, done=100, history=[(START + 10, 100.0)], ended=START + 10),
        Track(
            started=START + 10, total=300, done=300, history=[(START + 20, 300.0)], ended=START + 20
        ),
    ]
    result = estimate(Track(started=START, children=disks, ended=START + 20), START + 30)
    assert result.rate == 20 and result.progress == 1.0 and result.remaining == 0
