"""The backups pages: the agreed permissions (403 when refused, buttons shown only to those who
may use them), form errors naming the field with nothing saved, and list pages whose SQL query
count stays flat as rows grow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backups.choices import Trigger
from backups.models import BackupJob, BackupRun, Remote, RestorePoint, Schedule, VmBackup

pytestmark = pytest.mark.django_db


def test_every_page_needs_a_login(anonymous_client, make_job) -> None:
    job = make_job("nightly")
    for url in (reverse("backups:overview"), reverse("backups:job_detail", args=[job.pk])):
        response = anonymous_client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize(
    ("name", "args", "method", "permission"),
    [
        ("backups:overview", [], "get", "backups.view_backupjob"),
        ("backups:remote_list", [], "get", "backups.view_remote"),
        ("backups:remote_add", [], "get", "backups.add_remote"),
        ("backups:job_list", [], "get", "backups.view_backupjob"),
        ("backups:job_add", [], "get", "backups.add_backupjob"),
        ("backups:job_run", ["job"], "post", "backups.run_backupjob"),
        ("backups:job_delete", ["job"], "post", "backups.delete_backupjob"),
        ("backups:job_edit", ["job"], "get", "backups.change_backupjob"),
        ("backups:run_detail", ["run"], "get", "backups.view_backuprun"),
        ("backups:point_restore", ["point"], "post", "backups.restore_restorepoint"),
        ("backups:restore_wizard_confirm", ["vm"], "post", "backups.restore_restorepoint"),
        ("backups:restore_download", ["restore"], "get", "backups.restore_restorepoint"),
    ],
)
def test_each_action_needs_its_permission(
    client_with, make_job, name, args, method, permission
) -> None:
    job = make_job("nightly")
    run = BackupRun.objects.create(job=job, trigger=Trigger.PAGE)
    point = RestorePoint.objects.create(
        remote=job.remotes.get(), path="p.json", vm_uuid="v", timestamp="t", taken_at=job.created_at
    )
    ids = {"job": job.pk, "run": run.pk, "point": point.pk, "vm": "v", "restore": 999}
    url = reverse(name, args=[ids[arg] for arg in args])
    views = [
        "backups.view_backupjob",
        "backups.view_remote",
        "backups.view_backuprun",
        "backups.view_restorepoint",
    ]
    refused = client_with(*[perm for perm in views if perm != permission])
    assert getattr(refused, method)(url).status_code == 403
    allowed = client_with(permission, *views)
    assert getattr(allowed, method)(url).status_code != 403
    if name == "backups:job_run":
        assert BackupRun.objects.filter(trigger=Trigger.PAGE).count() == 2


def test_buttons_are_shown_only_to_those_who_may_use_them(client_with, make_job) -> None:
    job = make_job("nightly")
    url = reverse("backups:job_detail", args=[job.pk])
    page = client_with("backups.view_backupjob").get(url).content.decode()
    assert "Run now" not in page and "Delete the job" not in page and ">Edit<" not in page
    page = client_with("backups.view_backupjob", "backups.run_backupjob").get(url)
    assert "Run now" in page.content.decode()
    page = client_with("*").get(reverse("backups:job_list")).content.decode()
    assert "Add a job" in page


def test_the_remote_form_puts_the_write_test_failure_on_the_folder(client_with, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    client = client_with("backups.add_remote", "backups.view_remote")
    response = client.post(
        reverse("backups:remote_add"),
        {"name": "nas", "path": str(blocker / "backups"), "enabled": "on", "test_folder": "on"},
    )
    assert response.status_code == 200
    assert 'id="error-path"' in response.content.decode()
    assert "Not a directory" in response.content.decode()
    assert not Remote.objects.exists()
    response = client.post(
        reverse("backups:remote_add"),
        {"name": "nas", "path": str(tmp_path / "nas"), "enabled": "on", "test_folder": "on"},
    )
    remote = Remote.objects.get()
    assert response.status_code == 302 and response["Location"] == remote.get_absolute_url()
    assert remote.status == "ok" and remote.space_free > 0


def job_post(remote: Remote, vm_uuid: str, **extra) -> dict:
    data = {
        "name": "nightly",
        "mode": "delta",
        "vm_selection": "explicit",
        "vm_uuids": [vm_uuid],
        "remotes": [remote.pk],
        "full_interval": "0",
        "max_chain_length": "0",
        "concurrency": "2",
        "vm_timeout": "0",
        "schedules-TOTAL_FORMS": "2",
        "schedules-INITIAL_FORMS": "0",
        "schedules-MIN_NUM_FORMS": "0",
        "schedules-MAX_NUM_FORMS": "1000",
        "schedules-0-name": "nightly",
        "schedules-0-cron": "0 1 * * 1-6",
        "schedules-0-timezone": "UTC",
        "schedules-0-enabled": "on",
        "schedules-0-retention": "7",
        "schedules-0-snapshot_retention": "1",
        "schedules-1-name": "sunday",
        "schedules-1-cron": "0 3 * * 0",
        "schedules-1-timezone": "Europe/Paris",
        "schedules-1-enabled": "on",
        "schedules-1-retention": "4",
        "schedules-1-snapshot_retention": "0",
        "schedules-1-force_full": "on",
    }
    data.update(extra)
    return data


def test_a_job_with_two_schedules_one_forcing_fulls(client_with, live_pool, make_remote):
    vm = live_pool(vms=1).vm_set.get()
    remote = make_remote("nas")
    client = client_with("*")
    response = client.post(reverse("backups:job_add"), job_post(remote, vm.uuid))
    job = BackupJob.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    schedules = {schedule.name: schedule for schedule in job.schedules.all()}
    assert schedules["sunday"].force_full and not schedules["nightly"].force_full
    page = client.get(job.get_absolute_url()).content.decode()
    assert "At 03:00, only on Sunday (Europe/Paris)" in page
    assert "every backup a full" in page


@pytest.mark.parametrize(
    ("field", "value", "error_id", "message"),
    [
        ("schedules-1-cron", "0 3 * *", "error-schedules-1-cron", "has 4 fields"),
        ("schedules-1-timezone", "Paris", "error-schedules-1-timezone", "not a known time zone"),
        ("schedules-1-name", "NIGHTLY", "error-schedules-1-name", "two schedules are named"),
        ("remotes", [], "error-remotes", "choose at least one remote"),
        ("vm_uuids", [], "error-vm_uuids", "choose at least one VM"),
        ("concurrency", "0", "error-concurrency", "greater than or equal to 1"),
    ],
)
def test_bad_job_input_names_the_field_and_saves_nothing(
    client_with, live_pool, make_remote, field, value, error_id, message
) -> None:
    vm = live_pool(vms=1).vm_set.get()
    remote = make_remote("nas")
    response = client_with("*").post(
        reverse("backups:job_add"), job_post(remote, vm.uuid, **{field: value})
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert f'id="{error_id}"' in body and message in body
    assert not BackupJob.objects.exists() and not Schedule.objects.exists()


def make_history(job, remote, runs: int) -> None:
    """``runs`` finished runs of ``job`` with two VMs and a disk each, and their points."""
    from backups.models import VmBackupDisk

    for n in range(runs):
        run = BackupRun.objects.create(job=job, trigger=Trigger.SCHEDULE, status="success")
        for v in range(2):
            vm = VmBackup.objects.create(run=run, vm_uuid=f"vm-{v}", vm_name=f"vm {v}")
            VmBackupDisk.objects.create(vm_backup=vm, vdi_uuid=f"d{v}", mode="full", reason="x")
            RestorePoint.objects.create(
                remote=remote,
                path=f"xo-vm-backups/vm-{v}/{run.pk}.json",
                vm_uuid=f"vm-{v}",
                timestamp=f"2026010{n % 9}T000000Z",
                taken_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n),
                disks=[{"vdi": f"d{v}", "file": "f.vhd"}],
            )


def count_queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "name",
    [
        "overview",
        "job_list",
        "remote_list",
        "job_detail",
        "remote_detail",
        "point_list",
        "run_list",
    ],
)
def test_list_pages_keep_a_flat_query_count(client_with, make_job, make_remote, name) -> None:
    client = client_with("*")
    remote = make_remote("nas")
    job = make_job("job0", remotes=[remote])
    args = {"job_detail": [job.pk], "remote_detail": [remote.pk]}.get(name, [])
    url = reverse(f"backups:{name}", args=args)
    make_history(job, remote, 2)
    few = count_queries(client, url)
    for n in range(1, 8):
        extra = make_job(f"job{n}", remotes=[remote, make_remote(f"r{n}")])
        Schedule.objects.create(job=extra, name="daily", cron="0 1 * * *")
        make_history(extra, remote, 3)
    make_history(job, remote, 10)
    assert count_queries(client, url) == few


def test_the_run_page_shows_each_disks_mode_and_reason(client_with, make_job) -> None:
    from backups.models import VmBackupDisk

    job = make_job("nightly")
    run = BackupRun.objects.create(job=job, trigger=Trigger.PAGE, status="success")
    vm = VmBackup.objects.create(run=run, vm_uuid="v1", vm_name="web", status="success")
    VmBackupDisk.objects.create(
        vm_backup=vm,
        vdi_uuid="d1",
        vdi_name="system",
        mode="full",
        reason_code="forced-by-schedule",
        reason="full: the schedule 'sunday' forces full backups",
        bytes=1 << 20,
        files={"r": "xo-vm-backups/v1/vdis/j/d1/20260101T000000Z.vhd"},
    )
    client = client_with("backups.view_backuprun")
    page = client.get(run.get_absolute_url()).content.decode()
    assert "full: the schedule &#x27;sunday&#x27; forces full backups" in page
    data = client.get(reverse("backups:run_detail_json", args=[run.pk])).json()
    assert data["vms"][0]["disks"][0]["reason"] == "full: the schedule 'sunday' forces full backups"
    assert data["vms"][0]["disks"][0]["file"].endswith("20260101T000000Z.vhd")


def test_run_lists_show_the_modes_and_reasons_of_the_disks(client_with, make_job) -> None:
    from backups.models import VmBackupDisk

    job = make_job("nightly")
    run = BackupRun.objects.create(job=job, trigger=Trigger.PAGE, status="success")
    vm = VmBackup.objects.create(run=run, vm_uuid="v1", vm_name="web", status="success")
    for n, (mode, code) in enumerate([("full", "forced-by-schedule"), ("delta", "")]):
        VmBackupDisk.objects.create(vm_backup=vm, vdi_uuid=f"d{n}", mode=mode, reason_code=code)
    client = client_with("backups.view_backupjob")
    for url in (reverse("backups:overview"), job.get_absolute_url()):
        page = client.get(url).content.decode()
        assert "1 delta; 1 full (fulls: forced by schedule ×1)" in page


def test_the_admin_shows_every_backups_model(client_with, make_job) -> None:
    make_job("nightly")
    client = client_with("*")
    for model in (
        "remote",
        "backupjob",
        "schedule",
        "backuprun",
        "vmbackup",
        "vmbackupdisk",
        "restorepoint",
        "restore",
    ):
        assert client.get(reverse(f"admin:backups_{model}_changelist")).status_code == 200
    for model in ("remote", "backupjob", "schedule"):
        assert client.get(reverse(f"admin:backups_{model}_add")).status_code == 200
