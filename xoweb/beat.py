"""The beat scheduler of xoweb: django-celery-beat's database scheduler, which also tells each
firing of a backup schedule when beat fired it, on a clock that is the wall clock unless
``XOWEB_BEAT_CLOCK_SPEED`` makes it faster (demos and tests: ``xoweb/beat_clock.py``).

A schedule's run is keyed by the moment it stands for (``BackupRun.scheduled_for``, unique per
schedule), so that a moment fired twice (two beats by mistake, a message delivered twice) makes
one run. That moment is computed from the time beat fired, stamped here, not from the clock of
the worker that receives the message later: a worker whose clock is a little behind, or a
message that waited in the queue, would name another moment. ``backups/scheduling.py`` keeps
the entries; the Procfile starts beat with ``--scheduler=xoweb.beat:Scheduler``.
"""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from xoweb.beat_clock import ScaledClockMixin

#: The task of backup schedules (backups.scheduling.RUN_SCHEDULE; not imported, so that this
#: module stays importable before Django is set up).
RUN_SCHEDULE = "backups.tasks.run_schedule"


class Scheduler(ScaledClockMixin, DatabaseScheduler):
    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task != RUN_SCHEDULE:
            return super().apply_async(entry, producer, advance, **kwargs)
        # The entry's kwargs for this one message (entries are rebuilt from their rows, so the
        # stamp never reaches the database).
        given = entry.kwargs
        entry.kwargs = {**given, "fired_at": self.app.now().isoformat()}
        try:
            return super().apply_async(entry, producer, advance, **kwargs)
        finally:
            entry.kwargs = given
