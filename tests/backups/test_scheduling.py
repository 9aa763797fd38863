"""Schedules in beat: every enabled schedule is one django-celery-beat periodic task with a
crontab in the schedule's time zone, changed, disabled and deleted with it (the job page, the
admin's bulk edits, a job's rename or deletion); ``schedule_sync`` reports and repairs drift;
one moment of a schedule makes one run. Beat itself firing a schedule is in
tests/backups/test_beat_e2e.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from backups import cron, scheduling
from backups.models import BackupRun, Schedule
from backups.services import runs

pytestmark = pytest.mark.django_db


def entry_of(schedule: Schedule) -> PeriodicTask:
    schedule.refresh_from_db()
    return PeriodicTask.objects.select_related("crontab").get(pk=schedule.periodic_task_id)


def crontab_text(entry: PeriodicTask) -> str:
    c = entry.crontab
    return f"{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"


def job_form_post(job, **schedule_fields) -> dict:
    """The job page's form as it comes back with one schedule (the job's first)."""
    schedule = job.schedules.first()
    data = {
        "name": job.name,
        "mode": job.mode,
        "vm_selection": "explicit",
        "vm_uuids": job.vm_uuids,
        "remotes": [remote.pk for remote in job.remotes.all()],
        "full_interval": "0",
        "max_chain_length": "0",
        "concurrency": "2",
        "vm_timeout": "0",
        "schedules-TOTAL_FORMS": "1",
        "schedules-INITIAL_FORMS": "1",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
        "schedules-0-id": str(schedule.pk),
        "schedules-0-job": str(job.pk),
        "schedules-0-name": schedule.name,
        "schedules-0-cron": schedule.cron,
        "schedules-0-timezone": schedule.timezone,
        "schedules-0-enabled": "on",
        "schedules-0-retention": "7",
        "schedules-0-snapshot_retention": "0",
    }
    data.update({f"schedules-0-{key}": value for key, value in schedule_fields.items()})
    return {key: value for key, value in data.items() if value is not None}


def test_a_schedule_saved_through_the_job_page_is_a_periodic_task_that_follows_it(
    client, live_pool, make_job
) -> None:
    vm = live_pool(vms=1).vm_set.get()
    job = make_job("nightly", vms=[vm])
    schedule = Schedule.objects.create(
        job=job, name="daily", cron="0 1 * * 1-6", timezone="Europe/Paris"
    )
    entry = entry_of(schedule)
    assert entry.name == f"backup: nightly / daily ({str(schedule.uuid)[:8]})"
    assert entry.task == "backups.tasks.run_schedule"
    assert json.loads(entry.kwargs) == {"schedule_id": schedule.pk}
    assert json.loads(entry.headers) == {"shadow": "schedule daily of job nightly"}
    assert entry.enabled and entry.interval is None
    assert crontab_text(entry) == "0 1 * * 1-6" and str(entry.crontab.timezone) == "Europe/Paris"

    # A new cron through the page: the crontab follows, and beat counts the schedule as run
    # now, so that it does not fire at once a moment of the new cron that already passed.
    entry.last_run_at = timezone.now() - timedelta(days=2)
    entry.save()
    url = reverse("backups:job_edit", args=[job.pk])
    response = client.post(url, job_form_post(job, cron="30 22 * * *", timezone="UTC"))
    assert response.status_code == 302, response.content.decode()[-2000:]
    entry = entry_of(schedule)
    assert crontab_text(entry) == "30 22 * * *" and str(entry.crontab.timezone) == "UTC"
    assert entry.last_run_at > timezone.now() - timedelta(minutes=1)

    # Disabled through the page: the entry stays, disabled; enabled again, it fires again.
    response = client.post(url, job_form_post(job, cron="30 22 * * *", enabled=None))
    assert response.status_code == 302
    assert not entry_of(schedule).enabled
    client.post(url, job_form_post(job, cron="30 22 * * *"))
    assert entry_of(schedule).enabled

    # Renaming the job renames the entry; deleting the schedule deletes it.
    job.name = "nightly-2"
    job.save()
    assert entry_of(schedule).name.startswith("backup: nightly-2 / daily")
    response = client.post(url, {**job_form_post(job), "schedules-0-DELETE": "on"})
    assert response.status_code == 302
    assert not PeriodicTask.objects.filter(task=scheduling.RUN_SCHEDULE).exists()


def test_the_admins_bulk_edits_and_a_jobs_deletion_reach_beat(client, make_job) -> None:
    job = make_job("nightly")
    schedules = [
        Schedule.objects.create(job=job, name=f"s{n}", cron=f"{n} 1 * * *") for n in range(3)
    ]
    changelist = reverse("admin:backups_schedule_changelist")
    response = client.post(
        changelist,
        {"action": "disable", "_selected_action": [schedules[0].pk, schedules[1].pk]},
    )
    assert response.status_code == 302
    assert [entry_of(s).enabled for s in schedules] == [False, False, True]
    response = client.post(
        changelist,
        {"action": "delete_selected", "_selected_action": [schedules[0].pk], "post": "yes"},
    )
    assert response.status_code == 302
    assert PeriodicTask.objects.filter(task=scheduling.RUN_SCHEDULE).count() == 2
    client.post(reverse("admin:backups_backupjob_delete", args=[job.pk]), {"post": "yes"})
    assert not PeriodicTask.objects.filter(task=scheduling.RUN_SCHEDULE).exists()


def test_schedule_sync_reports_drift_with_check_and_repairs_it_without(make_job) -> None:
    job = make_job("nightly")
    daily = Schedule.objects.create(job=job, name="daily", cron="0 1 * * *")
    weekly = Schedule.objects.create(job=job, name="weekly", cron="0 3 * * 0")
    call_command("schedule_sync", "--check")  # in step: exits 0

    Schedule.objects.filter(pk=daily.pk).update(cron="15 2 * * *")  # no signal: drift
    entry_of(weekly).delete()  # by hand, in the admin of periodic tasks
    orphan = PeriodicTask.objects.create(
        name="backup: left behind",
        task=scheduling.RUN_SCHEDULE,
        crontab=scheduling.crontab_of(daily),
    )
    with pytest.raises(CommandError) as refused:
        call_command("schedule_sync", "--check")
    assert str(refused.value) == (
        "3 difference(s) between the schedules and beat's periodic tasks: run manage.py "
        "schedule_sync to repair them"
    )
    assert crontab_text(entry_of(daily)) == "0 1 * * *", "--check changes nothing"

    found = scheduling.sync_all()
    assert found.lines() == [
        "schedule nightly / weekly: no periodic task",
        "schedule nightly / daily: its periodic task differs in crontab",
        f"periodic task {orphan.name!r} fires no existing schedule",
    ]
    assert crontab_text(entry_of(daily)) == "15 2 * * *"
    assert crontab_text(entry_of(weekly)) == "0 3 * * 0"
    assert not PeriodicTask.objects.filter(pk=orphan.pk).exists()
    assert not scheduling.drift()


def test_one_moment_of_a_schedule_makes_one_run(make_job, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(runs, "start", started.append)
    job = make_job("nightly")
    schedule = Schedule.objects.create(job=job, name="daily", cron="0 1 * * *")
    moment = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)

    first = runs.fire(schedule.pk, moment + timedelta(seconds=0.4))
    assert first.scheduled_for == moment and first.trigger == "schedule"
    # The same moment again (two beats, a message delivered twice, a beat a hair early): the
    # same run, started again if it still waits (its claim makes that harmless), no second one.
    again = runs.fire(schedule.pk, moment - timedelta(seconds=0.5))
    assert again.pk == first.pk and BackupRun.objects.count() == 1
    assert started == [first.pk, first.pk]
    # The next day's moment is another run; a late firing stands for the latest moment.
    late = runs.fire(schedule.pk, moment + timedelta(days=1, hours=5))
    assert late.scheduled_for == moment + timedelta(days=1)
    assert BackupRun.objects.count() == 2

    schedule.enabled = False
    schedule.save()
    assert runs.fire(schedule.pk, moment + timedelta(days=2)) is None
    assert runs.fire(999_999, moment) is None


def test_next_runs_are_the_moments_celerys_crontab_fires() -> None:
    """Day of month and day of week together: beat wants both (Friday the 13th)."""
    after = datetime(2026, 1, 1, tzinfo=UTC)
    [first] = cron.next_runs("0 1 13 * 5", "UTC", after, 1)
    assert first == datetime(2026, 2, 13, 1, 0, tzinfo=UTC)
    beat = crontab(minute="0", hour="1", day_of_month="13", day_of_week="5")
    delta = beat.remaining_delta(after, tz=UTC)
    assert delta[0] + delta[1] == first
