"""Beat fires a schedule made on the job page, and the run completes: a real beat process
(xoweb/beat.py on the database scheduler), a real worker, the simulator and the watcher.

The test clock is beat's memory of when it last fired the schedule: a schedule saved now is
counted as fired now, so that beat waits for its next moment; setting that memory a little
more than a minute back makes the last minute's moment due, as if the test had waited for it.
Nothing else is faked: beat reads the entry, finds it due and sends the task.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tests.backups.sites import WORKER_ENV, sweep_every_second

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


#: SQL queries of the pages a person opens to watch the runs (the dashboard, the run history,
#: the job list) with 50 jobs: the same with 1 or 500 rows (tests/backups/test_pages.py).
QUERY_BUDGET = {"/": 17, "/backups/runs/": 7, "/backups/jobs/": 7}


def make_due(schedule) -> None:
    """Beat last fired the schedule just over a minute ago: the last minute's moment is due."""
    schedule.refresh_from_db()
    entry = PeriodicTask.objects.get(pk=schedule.periodic_task_id)
    entry.last_run_at = timezone.now() - timedelta(seconds=65)
    entry.save()  # PeriodicTask.save() tells beat that its entries changed


def test_beat_fires_a_schedule_made_on_the_job_page_and_stops_when_it_is_disabled(
    client, backup_pool, make_remote, start_celery_worker, start_celery_beat, wait_for
) -> None:
    from backups.models import BackupJob, BackupRun
    from pools.models import VM

    _sim, pool = backup_pool(vms=1)
    vm = VM.objects.guests().get(pool=pool)
    remote = make_remote("nas")
    form = {
        "name": "nightly",
        "mode": "delta",
        "vm_selection": "explicit",
        "vm_uuids": [vm.uuid],
        "remotes": [remote.pk],
        "full_interval": "0",
        "max_chain_length": "0",
        "concurrency": "2",
        "vm_timeout": "0",
        "schedules-TOTAL_FORMS": "1",
        "schedules-INITIAL_FORMS": "0",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
        "schedules-0-name": "every minute",
        "schedules-0-cron": "* * * * *",
        "schedules-0-timezone": "Europe/Paris",
        "schedules-0-enabled": "on",
        "schedules-0-retention": "7",
        "schedules-0-snapshot_retention": "0",
    }
    response = client.post(reverse("backups:job_add"), form)
    assert response.status_code == 302, response.content.decode()[-3000:]
    job = BackupJob.objects.get()
    schedule = job.schedules.get()

    worker = start_celery_worker(concurrency=2, options=("--max-tasks-per-child=1",), **WORKER_ENV)
    # Due before beat starts: beat's first read of its entries finds it due. (A change saved
    # while beat starts may be missed until the next one: its first look at the change marker
    # is its baseline.)
    make_due(schedule)
    beat = start_celery_beat(**WORKER_ENV)
    run = wait_for(
        lambda: BackupRun.objects.filter(job=job, status__in=["success", "failed"]).first(),
        timeout=60,
        message="beat never fired the schedule, or its run never ended",
    )
    assert run.status == "success", run.message
    assert run.trigger == "schedule" and run.schedule_id == schedule.pk
    assert run.scheduled_for.second == 0 and run.scheduled_for <= run.started
    assert "Sending due task backup: nightly / every minute" in beat.log()
    # Flower and the worker's log name the firing after the schedule and the job.
    assert "Task schedule every minute of job nightly[" in worker.log()

    # Disabled on the job page: the same due moment fires nothing any more.
    edit = {
        **form,
        "vm_uuids": [vm.uuid],
        "schedules-INITIAL_FORMS": "1",
        "schedules-0-id": str(schedule.pk),
        "schedules-0-job": str(job.pk),
    }
    del edit["schedules-0-enabled"]
    response = client.post(reverse("backups:job_edit", args=[job.pk]), edit)
    assert response.status_code == 302
    assert not PeriodicTask.objects.get(pk=schedule.periodic_task_id).enabled
    changes_seen = beat.log().count("DatabaseScheduler: Schedule changed.")
    make_due(schedule)
    wait_for(
        lambda: beat.log().count("DatabaseScheduler: Schedule changed.") > changes_seen,
        timeout=15,
        message="beat never re-read its entries",
    )
    time.sleep(3)  # beat looks every second (--max-interval=1): three chances to fire it
    assert beat.log().count("Sending due task backup:") == 1
    assert BackupRun.objects.filter(job=job).count() == 1


def test_fifty_jobs_fired_in_the_same_minute_by_two_beats_run_once_each(
    client, backup_pool, make_remote, start_celery_worker, start_celery_beat, wait_for
) -> None:
    """Two beats (a mistake production must not make, and the worst case of a message delivered
    twice) fire the same moment of 50 schedules: 50 runs, one per job, none lost, none twice;
    and the pages that list them stay within their query budget."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_celery_beat.models import PeriodicTasks

    from backups.models import BackupJob, BackupRun, Schedule, VmBackup
    from pools.models import VM

    _sim, pool = backup_pool(vms=50, disk_size="1M")
    remote = make_remote("nas")
    # Daily at the minute that has just begun: due once, now (beat's memory is set just before
    # it), and not again during the test.
    moment = timezone.now().replace(second=0, microsecond=0)
    cron = f"{moment.minute} {moment.hour} * * *"
    for n, vm in enumerate(VM.objects.guests().filter(pool=pool).order_by("name_label")):
        job = BackupJob.objects.create(name=f"job{n:02d}", vm_uuids=[vm.uuid], concurrency=1)
        job.remotes.set([remote])
        Schedule.objects.create(job=job, name="daily", cron=cron, timezone="UTC")

    def page_queries() -> dict[str, int]:
        counts = {}
        for url in ("/", reverse("backups:run_list"), reverse("backups:job_list")):
            with CaptureQueriesContext(connection) as captured:
                assert client.get(url).status_code == 200
            counts[url] = len(captured)
        return counts

    assert page_queries() == QUERY_BUDGET  # with 50 jobs and no run yet
    sweep_every_second()  # the runs wait their turn longer than the tasks' 4 s timeout
    # As the Procfile has it: the sweeps never wait behind backups on a worker of their own.
    start_celery_worker(queues="celery", concurrency=1, **WORKER_ENV)
    start_celery_worker(
        queues="backups", concurrency=4, options=("--max-tasks-per-child=1",), **WORKER_ENV
    )
    PeriodicTask.objects.filter(task="backups.tasks.run_schedule").update(
        last_run_at=moment - timedelta(seconds=5)
    )
    PeriodicTasks.update_changed()
    beats = [start_celery_beat(**WORKER_ENV), start_celery_beat(**WORKER_ENV)]
    wait_for(
        lambda: (
            BackupRun.objects.filter(status="success").count() == 50
            and not BackupRun.objects.exclude(status="success").exists()
        ),
        timeout=120,
        message="the 50 runs never all succeeded",
    )
    time.sleep(2)  # room for a late duplicate to make a 51st run, if one could
    fired = sum(beat.log().count("Sending due task backup:") for beat in beats)
    assert fired > 50, "both beats fired some of the schedules"
    runs = list(BackupRun.objects.all())
    assert len(runs) == 50 and len({run.job_id for run in runs}) == 50
    assert {run.scheduled_for for run in runs} == {moment}, "one moment for all"
    assert set(VmBackup.objects.values_list("attempt", "status")) == {(1, "success")}
    assert len(list(Path(remote.path).glob("xo-vm-backups/*/*.json"))) == 50
    after = page_queries()
    assert all(after[url] <= QUERY_BUDGET[url] + 2 for url in after), after  # + the run's rows
    assert after[reverse("backups:run_list")] == QUERY_BUDGET[reverse("backups:run_list")] + 2
