"""The run pages and the dashboard: the history across jobs with its filters (a flat query
count), a run's page saying per VM and disk what the mailed report says, cancel from the page
(operators only), and the dashboard's backups: last runs, failures, next runs, space left."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backups.choices import Trigger
from backups.models import BackupRun, Schedule, VmBackup, VmBackupDisk
from tasks.models import Task

pytestmark = pytest.mark.django_db


def finished_run(job, status="success", pool=None, vms=2, **fields) -> BackupRun:
    now = timezone.now()
    run = BackupRun.objects.create(
        job=job,
        trigger=Trigger.SCHEDULE,
        status=status,
        started=now - timedelta(seconds=90),
        ended=now,
        message=f"{vms} VM(s): …",
        **fields,
    )
    for n in range(vms):
        vm = VmBackup.objects.create(
            run=run,
            vm_uuid=f"uuid-{run.pk}-{n}",
            vm_name=f"web{n}",
            pool=pool,
            status=status if status != "partial" or n else "failed",
            started=now - timedelta(seconds=60),
            ended=now,
            bytes=64 << 20,
            error="" if status == "success" else "the pool refused the export",
        )
        VmBackupDisk.objects.create(
            vm_backup=vm,
            vdi_uuid=f"vdi-{n}",
            vdi_name="system",
            userdevice="0",
            mode="delta" if n else "full",
            reason="delta on the snapshot of 2026-01-01" if n else "full: first backup",
            size=1 << 30,
            bytes=64 << 20,
            duration=4.0,
        )
    return run


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content.decode()[-500:]
    return len(captured)


def test_the_run_list_filters_by_status_job_and_pool(client, live_pool, make_job) -> None:
    lab, other = live_pool("lab", vms=1), live_pool("other", vms=1)
    nightly, weekly = make_job("nightly"), make_job("weekly")
    ok = finished_run(nightly, pool=lab)
    bad = finished_run(nightly, status="failed", pool=other)
    weekly_run = finished_run(weekly, pool=lab)
    url = reverse("backups:run_list")

    def shown(**params) -> set[int]:
        page = client.get(url, params).content.decode()
        return {
            run.pk for run in (ok, bad, weekly_run) if f'href="/backups/runs/{run.pk}/"' in page
        }

    assert shown() == {ok.pk, bad.pk, weekly_run.pk}
    assert shown(status="failed") == {bad.pk}
    assert shown(job=nightly.pk) == {ok.pk, bad.pk}
    assert shown(pool=lab.pk) == {ok.pk, weekly_run.pk}
    assert shown(pool=lab.pk, job=nightly.pk) == {ok.pk}
    assert "<td>1 min 30 s</td>" in client.get(url).content.decode(), "each run's duration"
    refused = client.get(url, {"status": "exploded"})
    assert refused.status_code == 400
    assert "status: &#x27;exploded&#x27; is not one of pending, running" in refused.content.decode()
    assert client.get(url, {"job": "x"}).status_code == 400


def test_the_run_page_says_what_the_report_says(client, make_job) -> None:
    job = make_job("nightly")
    run = finished_run(job, status="partial")
    page = client.get(run.get_absolute_url()).content.decode()
    assert "failed: the pool refused the export" in page
    assert "full: first backup" in page and "delta on the snapshot of 2026-01-01" in page
    assert "1.00 GiB" in page and "64.0 MiB" in page  # size of the disk, bytes written
    assert "16.0 MiB/s" in page and "4 s" in page  # speed and duration of the disk
    assert "Cancel the run" not in page, "an ended run has nothing to cancel"


def test_cancel_from_the_run_page_needs_the_run_permission(client, client_as, make_job) -> None:
    job = make_job("nightly")
    run = BackupRun.objects.create(job=job, trigger=Trigger.PAGE, status="running")
    root = Task.objects.create(name="run", status="running", kind="run")
    BackupRun.objects.filter(pk=run.pk).update(task=root)
    waiting = VmBackup.objects.create(run=run, vm_uuid="a", vm_name="web", status="pending")
    url = reverse("backups:run_cancel", args=[run.pk])

    viewer = client_as("viewers")
    page = viewer.get(run.get_absolute_url()).content.decode()
    assert "Cancel the run" not in page and "Cancel this VM" not in page
    assert viewer.post(url).status_code == 403

    operator = client_as("operators")
    page = operator.get(run.get_absolute_url()).content.decode()
    assert "Cancel the run" in page and "Cancel this VM" in page
    response = operator.post(url, {"vm": waiting.pk}, follow=True)
    assert "VM web cancelled before it started." in response.content.decode()
    waiting.refresh_from_db()
    assert (
        waiting.status == "cancelled"
        and waiting.error == "not started: cancelled by operators-member"
    )
    run.refresh_from_db()
    assert run.status == "cancelled"  # its only VM was cancelled
    response = operator.post(url, follow=True)
    assert f"Nothing cancelled: run {run.pk} of job nightly already ended (cancelled)" in (
        response.content.decode()
    )
    assert operator.post(url, {"vm": "nope"}).status_code == 400


def test_the_dashboard_shows_last_runs_failures_next_runs_and_space(
    client, make_job, make_remote
) -> None:
    remote = make_remote("nas", space_total=100 << 30, space_free=40 << 30, status="ok")
    job = make_job("nightly", remotes=[remote])
    Schedule.objects.create(job=job, name="daily", cron="0 1 * * *", timezone="UTC")
    finished_run(job, status="failed")
    make_job("never-run")
    body = client.get(reverse("dashboard")).content.decode()
    assert 'id="backups-dashboard"' in body
    assert "never run" in body and ">failed</span>" in body
    assert 'of nightly: <span class="badge bad">failed</span>' in body
    assert "nightly</a> / daily" in body and " 01:00 UTC" in body
    assert "40.0 GiB left of 100 GiB" in body

    few = queries(client, reverse("dashboard"))
    for n in range(8):
        more = make_job(f"job{n}", remotes=[remote, make_remote(f"r{n}")])
        Schedule.objects.create(job=more, name="daily", cron=f"{n} 2 * * *")
        finished_run(more, status="partial")
    assert queries(client, reverse("dashboard")) == few


def test_the_job_form_checks_the_report_recipients(client, live_pool, make_remote) -> None:
    vm = live_pool(vms=1).vm_set.get()
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
        "report_when": "failure",
        "report_to": "ops@example.com, not-an-address",
        "schedules-TOTAL_FORMS": "0",
        "schedules-INITIAL_FORMS": "0",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
    }
    page = client.post(reverse("backups:job_add"), form).content.decode()
    assert "&#x27;not-an-address&#x27; is not an e-mail address" in page
    page = client.post(reverse("backups:job_add"), {**form, "report_to": ""}).content.decode()
    assert "enter an address to mail the reports to, or choose never" in page
    response = client.post(reverse("backups:job_add"), {**form, "report_to": "a@x.org b@x.org"})
    assert response.status_code == 302
    from backups.models import BackupJob

    assert BackupJob.objects.get().report_to == ["a@x.org", "b@x.org"]


def test_the_run_page_keeps_a_flat_query_count(client, make_job) -> None:
    job = make_job("nightly")
    few = finished_run(job, vms=2)
    many = finished_run(job, vms=20)
    assert queries(client, many.get_absolute_url()) == queries(client, few.get_absolute_url())
