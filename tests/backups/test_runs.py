"""Runs without a worker: the claim of a run (a job never runs twice), the dead-run sweep, the
fan-out within the job's concurrency, the outcome of a run, and the VMs a job resolves to.

The Celery messages are not sent here (the test transaction never commits): the on-commit
callbacks are captured and counted instead. tests/backups/test_backup_e2e.py runs the same
code in real worker processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups.choices import RunStatus, Trigger, VmBackupStatus
from backups.models import BackupRun, VmBackup
from backups.services import fanout, runs, selection, vm_backups
from tasks.models import Task

pytestmark = pytest.mark.django_db


def queued_run(job) -> BackupRun:
    return BackupRun.objects.create(job=job, trigger=Trigger.COMMAND)


def test_a_job_already_running_is_not_started_twice(make_job) -> None:
    job = make_job("nightly")
    first, second = queued_run(job), queued_run(job)
    assert runs.claim(first)
    assert not runs.claim(second)
    second.refresh_from_db()
    assert second.status == RunStatus.SKIPPED
    assert second.message.startswith(
        f"skipped: job nightly is already running (run {first.pk}, started "
    )
    assert not runs.claim(first), "a redelivered message never claims a run twice"
    first.refresh_from_db()
    assert first.status == RunStatus.RUNNING


def test_a_run_whose_workers_died_is_swept_before_the_next_claim(make_job, settings):
    """ "Already running" never sticks: the next claim of the job sweeps its running run first;
    its VM, whose worker is silent and has no try left, ends interrupted, and so does the run."""
    settings.BACKUP_INTERRUPTED_RETRIES = 0
    job = make_job("nightly")
    dead = queued_run(job)
    assert runs.claim(dead)
    silent = timezone.now() - timedelta(seconds=settings.BACKUP_HEARTBEAT_TIMEOUT + 1)
    vm = VmBackup.objects.create(
        run=dead, vm_uuid="a", status=VmBackupStatus.RUNNING, worker="host-b:12", heartbeat=silent
    )
    fresh = queued_run(job)
    assert runs.claim(fresh)
    dead.refresh_from_db()
    vm.refresh_from_db()
    assert dead.status == RunStatus.INTERRUPTED
    assert dead.message == "1 VM(s): 1 interrupted; 0 B written"
    assert vm.status == VmBackupStatus.INTERRUPTED
    assert vm.error.startswith("interrupted: its worker (host-b:12) sent no heartbeat for 60 s")


def test_a_run_that_died_while_it_started_is_interrupted(make_job, settings):
    job = make_job("nightly")
    dead = queued_run(job)
    assert runs.claim(dead)
    silent = timezone.now() - timedelta(seconds=settings.BACKUP_HEARTBEAT_TIMEOUT + 1)
    BackupRun.objects.filter(pk=dead.pk).update(heartbeat=silent)
    assert runs.claim(queued_run(job))
    dead.refresh_from_db()
    assert dead.status == RunStatus.INTERRUPTED
    assert dead.message.startswith("interrupted: the worker starting it stopped before it had")


def test_the_fan_out_never_exceeds_the_jobs_concurrency(
    make_job, django_capture_on_commit_callbacks
) -> None:
    job = make_job("nightly", concurrency=2)
    run = queued_run(job)
    assert runs.claim(run)
    VmBackup.objects.bulk_create(VmBackup(run=run, vm_uuid=f"vm-{n}") for n in range(5))
    with django_capture_on_commit_callbacks() as sent:
        assert fanout.dispatch(run.pk) == 2
        assert fanout.dispatch(run.pk) == 0, "no free slot: nothing more is sent"
    assert len(sent) == 2
    queued = list(VmBackup.objects.filter(status=VmBackupStatus.QUEUED).order_by("pk"))
    assert [vm.vm_uuid for vm in queued] == ["vm-0", "vm-1"]

    # A VM that ends frees its slot: the next waiting VM is sent, and only one.
    with django_capture_on_commit_callbacks() as sent:
        vm_backups._end(queued[0], VmBackupStatus.SUCCESS, "", from_status=VmBackupStatus.QUEUED)
        vm_backups._end(queued[0], VmBackupStatus.FAILED, "", from_status=VmBackupStatus.QUEUED)
    assert len(sent) == 1, "a second end of the same VM backup changes nothing"
    assert VmBackup.objects.filter(status=VmBackupStatus.QUEUED).count() == 2


def test_a_run_ends_when_its_last_vm_ends_with_a_status_and_summary(make_job) -> None:
    job = make_job("nightly")
    run = queued_run(job)
    assert runs.claim(run)
    good = VmBackup.objects.create(run=run, vm_uuid="a", status=VmBackupStatus.RUNNING)
    bad = VmBackup.objects.create(run=run, vm_uuid="b", status=VmBackupStatus.RUNNING)
    vm_backups._end(good, VmBackupStatus.SUCCESS, "", from_status=VmBackupStatus.RUNNING)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING, "one VM is still running"
    vm_backups._end(bad, VmBackupStatus.FAILED, "boom", from_status=VmBackupStatus.RUNNING)
    run.refresh_from_db()
    assert run.status == RunStatus.PARTIAL
    assert run.message == "2 VM(s): 1 succeeded, 1 failed; 0 B written"
    assert run.ended is not None


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["success", "success"], RunStatus.SUCCESS),
        (["skipped", "skipped"], RunStatus.SKIPPED),
        (["success", "skipped"], RunStatus.PARTIAL),
        (["failed", "failed"], RunStatus.FAILED),
        (["interrupted"], RunStatus.INTERRUPTED),
        (["failed", "interrupted"], RunStatus.FAILED),
        (["cancelled", "cancelled"], RunStatus.CANCELLED),
        (["success", "cancelled"], RunStatus.PARTIAL),
    ],
)
def test_the_status_of_a_finished_run(make_job, statuses, expected) -> None:
    run = queued_run(make_job("nightly"))
    VmBackup.objects.bulk_create(
        VmBackup(run=run, vm_uuid=str(n), status=status) for n, status in enumerate(statuses)
    )
    assert runs.outcome(run.pk)[0] == expected


def test_start_checks_remotes_resolves_vms_and_plans_their_tasks(
    live_pool, make_job, make_remote, django_capture_on_commit_callbacks, tmp_path
) -> None:
    pool = live_pool("lab", vms=3)
    good = make_remote("nas")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    broken = make_remote("broken", path=str(blocked / "backups"))
    job = make_job("rule", remotes=[good, broken], vm_selection="rule", pool=pool, concurrency=2)
    run = queued_run(job)
    with django_capture_on_commit_callbacks() as sent:
        runs.start(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert run.remotes == {str(good.uuid): "nas"}
    assert "Not a directory" in run.failed_remotes["broken"]
    assert len(sent) == 2 and VmBackup.objects.filter(status="queued").count() == 2
    root = Task.objects.get(pk=run.task_id)
    assert root.status == "running" and root.kind == "run"
    children = list(Task.objects.filter(parent=root).order_by("pk"))
    assert [child.kind for child in children] == ["vm"] * 3
    # The [NOBAK] disk (2 MiB) is not counted in what the VM's backup will transfer.
    assert {child.total for child in children} == {float(1 << 20)}


def test_a_run_with_no_usable_remote_fails_saying_why(make_job, make_remote, tmp_path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    job = make_job("nightly", remotes=[make_remote("broken", path=str(blocked / "x"))])
    run = queued_run(job)
    runs.start(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.message.startswith("the run could not start: no remote of the job is usable")
    assert Task.objects.get(pk=run.task_id).status == "failure"


def test_selection_by_rule_uses_live_vms_tags_and_power_state(live_pool, make_job) -> None:
    pool = live_pool("lab", vms=4, tags=["web"])
    job = make_job("rule", vm_selection="rule", pool=pool, vm_tags=["web"])
    chosen = selection.resolve(job)
    assert sorted(vm.name_label for vm in chosen.vms) == ["lab-vm0", "lab-vm2"]
    job.vm_power_state = "Running"
    assert selection.resolve(job).reason == "no VM of pool lab matches the rule"

    pool.status = "disconnected"
    pool.save()
    job.vm_power_state, job.vm_tags = "", []
    chosen = selection.resolve(job)
    assert chosen.vms == []
    assert chosen.reason.startswith("pool lab is disconnected or has no live VM")


def test_explicit_vms_of_a_lost_pool_are_failed_with_the_reason(live_pool, make_job) -> None:
    pool = live_pool("lab", vms=1)
    vm = pool.vm_set.get()
    job = make_job("nightly", vms=[vm])
    pool.status = "stale"
    pool.save()
    chosen = selection.resolve(job)
    assert chosen.vms == []
    assert chosen.missing[vm.uuid] == (
        f"VM lab-vm0 ({vm.uuid}) is not live: pool lab is stale (connection lost, within "
        "the grace period) or its watcher is not running"
    )
