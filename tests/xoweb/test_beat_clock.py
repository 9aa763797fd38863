"""beat's faster clock (XOWEB_BEAT_CLOCK_SPEED): a real beat and a real worker, a cron entry of
every minute; at 60 times the wall clock it fires about once a second."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from xoweb.beat_clock import ScaledClock

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_clock_runs_n_times_faster_from_its_origin():
    clock = ScaledClock(30, origin=time.time() - 2)
    ahead = clock.now(UTC) - datetime.now(UTC)
    assert 57 <= ahead.total_seconds() <= 60, "2 s ago at 30x: 58 s ahead"


@pytest.mark.slow
def test_beat_fires_a_cron_of_every_minute_every_second_at_sixty_times(
    start_celery_beat, start_celery_worker, tmp_path
):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    journal = tmp_path / "journal"
    every_minute, _ = CrontabSchedule.objects.get_or_create(
        minute="*", hour="*", day_of_month="*", month_of_year="*", day_of_week="*", timezone="UTC"
    )
    PeriodicTask.objects.create(
        name="canary every minute",
        task="tests.canary",
        crontab=every_minute,
        args=json.dumps([str(journal), 0]),
    )
    start_celery_worker(queues="celery")
    start_celery_beat(XOWEB_BEAT_CLOCK_SPEED="60")
    time.sleep(8)
    firings = journal.read_text().count("start ") if journal.exists() else 0
    # Eight seconds are eight of beat's minutes (one may be lost to the start of the worker).
    assert 5 <= firings <= 9, f"{firings} firings in 8 s"
