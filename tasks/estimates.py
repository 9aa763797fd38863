"""Progress, rate and time-remaining estimates of a task, as pure functions (no Django).

Xen Orchestra 5.56 shows ``remaining = elapsed·(1−p)/p``: the average rate since the start. After
a change of speed that average takes as long again as the task has already run to catch up, and
a stalled task keeps a confident countdown. Here:

* the rate is measured over a recent *window* (``window`` seconds), not since the start, so the
  estimate follows the current speed within one window;
* nothing is estimated until there is enough signal: ``min_signal`` seconds of observed history
  and some progress in the window;
* between two samples the estimate counts down for at most ``grace`` seconds (progress is
  reported in throttled steps); after that the silence counts as no progress, so the rate decays
  and the remaining time grows honestly;
* a task whose progress has not moved for ``stall_after`` seconds, or during a whole window, is
  *stalled*: no remaining time;
* a parent's progress and rate derive from its children weighted by their size, including the
  children that have not started yet, so a backup run's estimate covers all its VMs.

A task is described by a :class:`Track` (its own samples, or its children); :func:`estimate`
turns a track and the current time into an :class:`Estimate`. Times are unix seconds (floats).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

WINDOW_SECONDS = 30.0
MIN_SIGNAL_SECONDS = 5.0
GRACE_SECONDS = 5.0
STALL_AFTER_SECONDS = 60.0
MAX_HISTORY_SAMPLES = 200

Sample = tuple[float, float]  # (unix time, units done at that time)


@dataclass(frozen=True)
class Track:
    """What is known of one task's progress.

    A leaf track has ``history``: ascending ``(time, done)`` samples in its own units (bytes, or
    a fraction of 1 when only a progress ratio is known, as for XAPI tasks). A track with
    ``children`` derives its done and total from them and ignores its own samples.

    ``total`` is None when the amount of work is unknown. ``finished`` says whether the task has
    ended, whatever the outcome: a finished task has no work left, so its total counts as what
    it did.
    """

    started: float | None
    total: float | None = None
    done: float = 0.0
    history: Sequence[Sample] = ()
    ended: float | None = None
    children: Sequence[Track] = field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        return self.ended is not None


@dataclass(frozen=True)
class Estimate:
    """What the pages show of a task at a given time; None means "not known"."""

    progress: float | None  # 0..1
    elapsed: float | None  # seconds since the start (to the end when finished)
    rate: float | None  # units per second over the recent window
    remaining: float | None  # seconds
    eta: float | None  # unix time of the estimated end
    stalled: bool = False


# --- samples -------------------------------------------------------------------------------------


def append_sample(
    history: Sequence[Sample], at: float, done: float, *, max_samples: int = MAX_HISTORY_SAMPLES
) -> list[Sample]:
    """Return ``history`` with the sample ``(at, done)`` added, at most ``max_samples`` long.

    Steps:
    1. a sample at the same time as the last replaces it (a burst of flushes keeps one point);
    2. when the history is full, every other sample of its older half is dropped, so the recent
       window stays dense and the start of the task stays known.
    """
    samples = [(float(t), float(d)) for t, d in history]
    if samples and at <= samples[-1][0]:
        samples[-1] = (samples[-1][0], float(done))
    else:
        samples.append((float(at), float(done)))
    if len(samples) > max_samples:
        half = len(samples) // 2
        samples = samples[:half:2] + samples[half:]
    return samples


def done_at(history: Sequence[Sample], at: float) -> float:
    """Units done at time ``at``: linear between samples, 0 before the first, held after the last.

    :func:`estimate` puts a ``(started, 0)`` sample first, so that before the first reported
    sample the progress is taken as linear from the start.
    """
    if not history:
        return 0.0
    times = [t for t, _ in history]
    index = bisect.bisect_right(times, at)
    if index == 0:
        return 0.0
    if index == len(history):
        return history[-1][1]
    (t0, d0), (t1, d1) = history[index - 1], history[index]
    if t1 <= t0:
        return d1
    return d0 + (d1 - d0) * (at - t0) / (t1 - t0)


def _sampling_gap(leaves: Sequence[Track]) -> float:
    """The usual time between two samples of the most often reported running leaf.

    XAPI reports progress in coarse steps, seconds apart: waiting that long for the next step is
    not a slowdown.
    """
    gaps = []
    for leaf in leaves:
        recent = leaf.history[-11:]
        if leaf.ended is None and len(recent) >= 3:
            gaps.append((recent[-1][0] - recent[0][0]) / (len(recent) - 1))
    return min(gaps, default=0.0)


def last_change(history: Sequence[Sample]) -> float | None:
    """Time of the last sample where the done units grew (None if they never grew)."""
    previous = 0.0
    changed = None
    for t, d in history:
        if d > previous:
            changed = t
        previous = max(previous, d)
    return changed


# --- trees ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    """A track with its totals worked out once (a tree is walked once per estimate)."""

    total: float | None  # in the track's own units; None when unknown
    done: float
    finished: bool
    ended: float | None
    leaves: tuple[Track, ...]
    parts: tuple[tuple[_Node, bool], ...]  # (child, counted as one item when units are unknown)
    history: Sequence[Sample]

    def done_at(self, at: float) -> float:
        if not self.parts:
            return done_at(self.history, at)
        return sum(
            (1.0 if part.ended is not None and at >= part.ended else 0.0)
            if as_item
            else part.done_at(at)
            for part, as_item in self.parts
        )


def _build(track: Track) -> _Node:
    """Work out a track's total and done, from its children when it has any.

    When any child has a total, the parent counts in those units (bytes, say), and children
    without a total weigh nothing (a snapshot beside disk transfers). When none has, each child
    counts as one item, done when it ends. A finished task's total is what it did: nothing is
    left of it, whatever its outcome. A running parent that declared a larger total than its
    children's (children created as it goes) keeps the declared one.
    """
    if not track.children:
        total = (track.done if track.done > 0 else None) if track.finished else track.total
        history = track.history
        if track.started is not None and (not history or history[0][0] > track.started):
            # Nothing was done at the start. Without this point, a history that begins late
            # (a watcher that came up while an export was at 50 %) would count all the
            # progress before its first sample as done in the window.
            history = [(track.started, 0.0), *history]
        return _Node(total, track.done, track.finished, track.ended, (track,), (), history)
    nodes = [_build(child) for child in track.children]
    leaves = tuple(leaf for node in nodes for leaf in node.leaves)
    if any(node.total for node in nodes):
        parts = tuple((node, False) for node in nodes if node.total)
        total: float | None = sum(node.total or 0.0 for node in nodes)
        done = sum(min(node.done, node.total or 0.0) for node in nodes)
    else:
        parts = tuple((node, True) for node in nodes)
        total = float(len(nodes))
        done = float(sum(1 for node in nodes if node.finished))
    if track.finished:
        total = done if done > 0 else None
    elif track.total is not None and track.total > (total or 0.0):
        total = track.total
    return _Node(total, done, track.finished, track.ended, leaves, parts, ())


# --- the estimate --------------------------------------------------------------------------------


def estimate(
    track: Track,
    now: float,
    *,
    window: float = WINDOW_SECONDS,
    min_signal: float = MIN_SIGNAL_SECONDS,
    grace: float = GRACE_SECONDS,
    stall_after: float = STALL_AFTER_SECONDS,
) -> Estimate:
    """Estimate a task's progress, rate, remaining time and end at time ``now``.

    Steps:
    1. progress = done / total, from the children when there are any;
    2. a finished task: its elapsed time and average rate, nothing remaining;
    3. the window ends at the last sample, or ``grace`` seconds before now when the last sample
       is older; the rate is the growth of the done units over the window (or since the start
       when the task is younger than the window);
    4. no rate until ``min_signal`` seconds were observed and something moved in the window;
       stalled when nothing moved for ``stall_after`` seconds;
    5. remaining = units left / rate, minus the time since the last sample (up to ``grace``).
    """
    node = _build(track)
    total, done = node.total, node.done
    progress = None if not total else max(0.0, min(1.0, done / total))
    starts = [leaf.started for leaf in node.leaves if leaf.started is not None]
    if track.started is not None:
        starts.append(track.started)
    started = min(starts, default=None)
    if track.finished:
        elapsed = None if started is None else max(0.0, track.ended - started)
        rate = done / elapsed if elapsed and done else None
        if track.total and not track.children:  # where a failed or cancelled task stopped
            progress = max(0.0, min(1.0, track.done / track.total))
        else:
            progress = 1.0
        return Estimate(progress, elapsed, rate=rate, remaining=0.0, eta=track.ended)
    if started is None:
        return Estimate(progress, elapsed=None, rate=None, remaining=None, eta=None)
    elapsed = max(0.0, now - started)
    last_sample, moved_last = started, None
    for leaf in node.leaves:
        if leaf.history:
            last_sample = max(last_sample, leaf.history[-1][0])
        if leaf.ended is not None:
            last_sample = max(last_sample, leaf.ended)
        changed = leaf.ended if leaf.ended is not None else last_change(leaf.history)
        if changed is not None and (moved_last is None or changed > moved_last):
            moved_last = changed
    grace = min(max(grace, 1.5 * _sampling_gap(node.leaves)), window / 2)
    if moved_last is not None and now - moved_last >= stall_after:
        return Estimate(progress, elapsed, rate=0.0, remaining=None, eta=None, stalled=True)
    window_end = min(now, max(last_sample, now - grace))
    span = min(window, window_end - started)
    if span < min_signal:
        return Estimate(progress, elapsed, rate=None, remaining=None, eta=None)
    moved = node.done_at(window_end) - node.done_at(window_end - span)
    if moved <= 0:
        # Something moved once but nothing in the whole window: that is a stall too.
        stalled = moved_last is not None
        rate = 0.0 if stalled else None
        return Estimate(progress, elapsed, rate=rate, remaining=None, eta=None, stalled=stalled)
    rate = moved / span
    if total is None:
        return Estimate(progress, elapsed, rate=rate, remaining=None, eta=None)
    left = max(0.0, total - done)
    remaining = max(0.0, left / rate - min(max(0.0, now - last_sample), grace))
    return Estimate(progress, elapsed, rate=rate, remaining=remaining, eta=now + remaining)


def naive_remaining(started: float, now: float, progress: float) -> float | None:
    """Xen Orchestra 5.56's estimate, elapsed·(1−p)/p, kept to compare against in tests."""
    if progress <= 0 or progress >= 1:
        return None
    elapsed = now - started
    return elapsed * (1 - progress) / progress
