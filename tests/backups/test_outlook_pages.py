"""The storage outlook on the pages: readings kept from each check, the forecast on the
remote's row, the chart and the date on the remote's page, the warning on the dashboard."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backups.models import Remote, RemoteSpaceSample
from backups.services import outlook, remotes

pytestmark = pytest.mark.django_db

GIB = 1 << 30


def readings(remote: Remote, *, days: int, per_day: int, used0: int, total: int, now):
    """A reading a day for ``days`` days up to ``now``, growing by ``per_day``."""
    for day in range(days, -1, -1):
        used = used0 + per_day * (days - day)
        outlook.record_reading(
            remote, total=total, free=total - used, now=now - timedelta(days=day)
        )


def test_a_check_keeps_one_reading_per_period_and_the_forecast_lands_on_the_row(
    make_remote, settings
):
    settings.OUTLOOK_SAMPLE_SECONDS = 300
    remote = make_remote("nas")
    first = remotes.check(remote)
    assert first.ok
    assert remotes.check(remote).ok  # a second check within 5 minutes: no second reading
    assert RemoteSpaceSample.objects.filter(remote=remote).count() == 1
    sample = RemoteSpaceSample.objects.get(remote=remote)
    assert (sample.total, sample.free) == (first.total, first.free)
    remote.refresh_from_db()
    assert remote.growth_per_day is None and remote.full_at is None
    assert remote.outlook_note.startswith("not enough history yet: 1 reading(s)")


def test_a_growing_remote_gets_its_date_its_chart_and_a_warning_on_the_dashboard(
    make_remote, client, settings
):
    settings.OUTLOOK_WARN_DAYS = 30
    now = timezone.now()
    soon = make_remote("soon")
    readings(soon, days=10, per_day=10 * GIB, used0=500 * GIB, total=1000 * GIB, now=now)
    later = make_remote("later")
    readings(later, days=10, per_day=1 * GIB, used0=100 * GIB, total=1000 * GIB, now=now)

    soon.refresh_from_db()
    assert soon.growth_per_day == pytest.approx(10 * GIB)
    # 400 GiB free at 10 GiB a day: 40 days.
    assert (soon.full_at - now).total_seconds() / 86400 == pytest.approx(40, abs=0.01)
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert 'id="outlook-warnings"' not in dashboard, "40 days is beyond the 30 days warned"

    settings.OUTLOOK_WARN_DAYS = 45
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert "Remote <a href" in dashboard and ">soon</a> will be full around" in dashboard
    # 40 days from the readings, a moment less by the time the page is drawn.
    assert re.search(r"in (40 d 00 h|39 d 23 h), at its growth of 10.0 GiB a day", dashboard)
    warnings = re.search(r'<section class="outlook-warnings".*?</section>', dashboard, re.S)
    assert ">later</a>" not in warnings.group(0), "890 days away"
    # The remotes' table beside it says when each fills, at its rate.
    assert re.search(r">later</a>.*?full around <time[^>]*>\d{4}-\d\d-\d\d<", dashboard, re.S)

    page = client.get(reverse("backups:remote_detail", args=[soon.pk])).content.decode()
    assert "Growing by <strong>10.0 GiB a day</strong>" in page
    assert re.search(
        r"\(in (40 d 00 h|39 d 23 h)\) at that rate: within the 45 days the dashboard warns", page
    )
    assert '<svg class="outlook-chart"' in page and 'class="forecast"' in page
    assert "<title>Space used on soon</title>" in page


def test_a_shrinking_remote_never_fills_and_old_readings_are_pruned(make_remote, client, settings):
    now = timezone.now()
    remote = make_remote("tidy")
    readings(remote, days=5, per_day=-GIB, used0=50 * GIB, total=100 * GIB, now=now)
    page = client.get(reverse("backups:remote_detail", args=[remote.pk])).content.decode()
    assert "The space used does not grow (-1.00 GiB a day): no date at which it fills." in page

    settings.OUTLOOK_HISTORY_DAYS = 3
    assert outlook.prune(now) == 2  # days 5 and 4 ago
    assert RemoteSpaceSample.objects.filter(remote=remote).count() == 4


def test_the_hourly_reading_is_registered_with_beat():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(name="backups: read remote spaces")
    assert task.task == "backups.tasks.read_remote_spaces" and task.enabled
    assert (task.interval.every, task.interval.period) == (1, "hours")
