"""A faster clock for beat, for demos and tests: ``XOWEB_BEAT_CLOCK_SPEED=N`` makes beat's time
run N times faster than the wall clock from the moment it starts (1, the default: real time).

Cron cannot say "every few seconds", and a test of what a schedule does over ten minutes
should not take ten minutes. With this clock, beat itself fires every schedule as the cron
says, only in its own faster time: at N = 30 a schedule of every two minutes fires every four
seconds and one of every ten minutes every twenty, with nothing else changed (the schedules,
the PeriodicTasks, the runs and the workers are the ones `make run` has). Every entry of beat
follows the clock, the periodic sweeps too (they run N times as often).

How: beat asks "now" in three places — Celery's ``app.now`` (interval schedules, and the
moment beat stamps on a firing), each crontab's own ``nowfun``, and django-celery-beat's
``ModelEntry._default_now`` (the ``last_run_at`` it saves) — and each is pointed at the scaled
clock; the delay ``tick`` returns (in beat's time) is divided by N before beat sleeps on it.
Never set it in production: every schedule would fire N times too often.
"""

from __future__ import annotations

import time
from datetime import datetime, tzinfo

from django.conf import settings


class ScaledClock:
    """Wall-clock time, ``speed`` times faster from ``origin`` (a Unix time) on."""

    def __init__(self, speed: float, origin: float | None = None) -> None:
        self.speed = speed
        self.origin = time.time() if origin is None else origin

    def timestamp(self) -> float:
        return self.origin + (time.time() - self.origin) * self.speed

    def now(self, zone: tzinfo | None) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), zone)


class ScaledEntry:
    """Mixed into django-celery-beat's ``ModelEntry``: its "now" is the clock's."""

    clock: ScaledClock

    def __init__(self, model, app=None) -> None:
        super().__init__(model, app=app)
        schedule = getattr(self, "schedule", None)
        if schedule is not None and getattr(schedule, "nowfun", None) is not None:
            zone = getattr(schedule, "tz", None) or self.app.timezone
            schedule.nowfun = lambda: self.clock.now(zone)

    def _default_now(self) -> datetime:
        return self.clock.now(self.app.timezone)


class ScaledClockMixin:
    """Mixed into beat's scheduler (before django-celery-beat's ``DatabaseScheduler``)."""

    def __init__(self, *args, **kwargs) -> None:
        speed = settings.BEAT_CLOCK_SPEED
        self.clock = ScaledClock(speed) if speed != 1 else None
        if self.clock is not None:
            # The entries are built while the scheduler starts: their class first.
            self.Entry = type("ScaledModelEntry", (ScaledEntry, self.Entry), {"clock": self.clock})
        super().__init__(*args, **kwargs)
        if self.clock is not None:
            clock, app = self.clock, self.app
            app.now = lambda: clock.now(app.timezone)
            # In beat's time: the longest real sleep between two looks stays what it was.
            self.max_interval *= speed

    def tick(self, *args, **kwargs) -> float:
        delay = super().tick(*args, **kwargs)
        return delay / self.clock.speed if self.clock is not None else delay
