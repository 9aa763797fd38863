"""The beat scheduler of xoweb: django-celery-beat's database scheduler, with the clock of
``xoweb/beat_clock.py`` (real time unless ``XOWEB_BEAT_CLOCK_SPEED`` says otherwise)."""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from xoweb.beat_clock import ScaledClockMixin


class Scheduler(ScaledClockMixin, DatabaseScheduler):
    pass
