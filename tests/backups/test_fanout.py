"""The fan-out's rules without a worker: the pools' limit of exports across jobs, a VM whose
worker died backed up again (or ended with the reason), a redelivered message that never backs
a VM up twice, lost messages sent again by the sweep, and cancels.

The Celery messages are not sent (the test transaction never commits): the on-commit callbacks
are captured and counted. The same code runs in real worker processes in
tests/backups/test_scale_e2e.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from backups.choices import RunStatus, Trigger, VmBackupStatus
from backups.models import BackupRun, VmBackup
from backups.services import cancel, fanout, runs, sweep, vm_backups
from tasks.models import Task
from tasks.reporter import TaskCancelled, start_planned, task

pytestmark = pytest.mark.django_db


@pytest.fixture
def started_run(live_pool, make_job, django_capture_on_commit_callbacks):
    """``started_run(pool, name, vms=N, concurrency=C)``: a job of N VMs of ``pool`` whose run
    was started (claimed, VMs planned, the first ones queued); returns (run, messages sent)."""

    def start(pool, name: str = "nightly", vms: int | None = None, concurrency: int = 2):
        chosen = list(pool.vm_set.order_by("name_label"))[:vms]
        job = make_job(name, vms=chosen, concurrency=concurrency)
        run = BackupRun.objects.create(job=job, trigger=Trigger.COMMAND)
        with django_capture_on_commit_callbacks() as sent:
            runs.start(run.pk)
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING, run.message
        return run, sent

    return start


def states(run) -> list[str]:
    return list(run.vm_backups.order_by("pk").values_list("status", flat=True))


def running_as(
    vm_backup: VmBackup, worker: str, beat_seconds_ago: float = 0, *, task_started: bool = True
) -> VmBackup:
    """What a claim by ``worker`` leaves, with its last beat that long ago (and its task
    started, unless the test starts it)."""
    moment = timezone.now() - timedelta(seconds=beat_seconds_ago)
    VmBackup.objects.filter(pk=vm_backup.pk).update(
        status=VmBackupStatus.RUNNING, worker=worker, started=moment, heartbeat=moment
    )
    if task_started:
        Task.objects.filter(pk=vm_backup.task_id).update(status="running", started=moment)
    return VmBackup.objects.get(pk=vm_backup.pk)


def test_the_pools_limit_of_exports_holds_across_jobs(
    live_pool, started_run, settings, django_capture_on_commit_callbacks
) -> None:
    settings.BACKUP_MAX_EXPORTS_PER_POOL = 3
    pool = live_pool("lab", vms=6)
    first, sent_first = started_run(pool, "first", vms=3, concurrency=3)
    second, sent_second = started_run(pool, "second", vms=6, concurrency=3)
    # The second job's VMs 0-2 are also the first's: another job, another run, its own rows.
    assert len(sent_first) == 3 and len(sent_second) == 0, "the pool's 3 export slots are taken"
    assert states(second) == ["pending"] * 6

    # The first run's VM ends: its own run has nothing more waiting, so the slot goes to the
    # run waiting on the same pool, and only one VM of it.
    done = first.vm_backups.order_by("pk").first()
    with django_capture_on_commit_callbacks() as sent:
        vm_backups._end(done, VmBackupStatus.SUCCESS, "", from_status=VmBackupStatus.QUEUED)
    assert len(sent) == 1
    assert states(second) == ["queued"] + ["pending"] * 5
    assert fanout.pool_load([pool.pk]) == {pool.pk: 3}


def test_a_vm_whose_worker_stopped_beating_is_backed_up_again_under_the_next_try(
    live_pool, started_run, settings, django_capture_on_commit_callbacks
) -> None:
    settings.BACKUP_INTERRUPTED_RETRIES = 1
    run, _ = started_run(live_pool("lab", vms=1))
    vm_backup = run.vm_backups.get()
    silent = settings.BACKUP_HEARTBEAT_TIMEOUT + 5
    dead = running_as(vm_backup, "host-b:4242", beat_seconds_ago=silent)
    old_task = dead.task_id

    with django_capture_on_commit_callbacks() as sent:
        swept = sweep.sweep()
    assert swept.taken_over == 1 and len(sent) == 1, "one message for the next try"
    again = VmBackup.objects.get(pk=vm_backup.pk)
    assert (again.status, again.attempt, again.worker) == ("queued", 2, "")
    [earlier] = again.earlier_attempts
    assert earlier["attempt"] == 1 and earlier["worker"] == "host-b:4242"
    assert earlier["status"] == "interrupted"
    assert earlier["error"] == (
        f"interrupted: its worker (host-b:4242) sent no heartbeat for "
        f"{settings.BACKUP_HEARTBEAT_TIMEOUT} s (killed, or its host stopped); backing it up again"
    )
    assert Task.objects.get(pk=old_task).status == "interrupted"
    new_task = Task.objects.get(pk=again.task_id)
    assert new_task.status == "pending" and new_task.name.endswith("(try 2)")
    assert new_task.parent_id == run.task_id

    # The first try's worker was only slow and comes back: its end changes nothing.
    assert not vm_backups._end(dead, VmBackupStatus.SUCCESS, "", from_status="running")
    assert VmBackup.objects.get(pk=vm_backup.pk).status == "queued"
    # A second sweep finds nothing to do.
    assert sweep.sweep().taken_over == 0


def test_a_redelivered_message_never_backs_a_vm_up_twice(live_pool, started_run, settings) -> None:
    """A live holder keeps its VM; a holder of this host whose process is gone is proven dead at
    once, and the redelivered message claims the next try itself."""
    settings.BACKUP_INTERRUPTED_RETRIES = 1
    run, _ = started_run(live_pool("lab", vms=1))
    vm_backup = run.vm_backups.get()
    running_as(vm_backup, f"{settings.HOST_NAME}:{os.getpid()}")  # alive: this very process
    assert vm_backups.claim(vm_backup.pk) is None
    assert VmBackup.objects.get(pk=vm_backup.pk).attempt == 1

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running_as(vm_backup, f"{settings.HOST_NAME}:{gone.pid}")  # beat just now, but dead
    claimed = vm_backups.claim(vm_backup.pk)
    assert claimed is not None and claimed.attempt == 2 and claimed.status == "running"
    assert claimed.earlier_attempts[0]["error"] == (
        f"interrupted: the worker process backing it up ({settings.HOST_NAME}:{gone.pid}) "
        "died; backing it up again"
    )
    # Ended: another delivery changes nothing at all.
    vm_backups._end(claimed, VmBackupStatus.SUCCESS, "", from_status="running")
    assert vm_backups.claim(vm_backup.pk) is None
    row = VmBackup.objects.get(pk=vm_backup.pk)
    assert (row.status, row.attempt) == ("success", 2)


@pytest.mark.parametrize(
    ("retries", "timeout", "expected", "message"),
    [
        (0, 0, "interrupted", "interrupted: its worker (host-b:1) sent no heartbeat for"),
        (1, 30, "failed", "took longer than the job's per-VM timeout (30 s) and was killed"),
    ],
)
def test_a_dead_try_without_tries_left_or_past_its_time_limit_ends_the_vm(
    live_pool, started_run, settings, retries, timeout, expected, message
) -> None:
    settings.BACKUP_INTERRUPTED_RETRIES = retries
    run, _ = started_run(live_pool("lab", vms=1))
    run.job.vm_timeout = timeout
    run.job.save()
    vm_backup = running_as(run.vm_backups.get(), "host-b:1", beat_seconds_ago=200)
    assert sweep.sweep().taken_over == 1
    row = VmBackup.objects.get(pk=vm_backup.pk)
    assert row.status == expected and row.error.startswith(message), row.error
    run.refresh_from_db()
    assert run.status == expected and run.ended is not None


def test_the_sweep_sends_lost_messages_again_once_per_period(
    live_pool, started_run, settings, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    sent_again = []
    monkeypatch.setattr(fanout, "send", sent_again.append)
    monkeypatch.setattr(runs, "send_start", lambda run: sent_again.append(f"start {run.pk}"))
    run, _ = started_run(live_pool("lab", vms=1))
    vm_backup = run.vm_backups.get()
    long_ago = timezone.now() - timedelta(seconds=2 * settings.BROKER_VISIBILITY_SECONDS + 1)
    VmBackup.objects.filter(pk=vm_backup.pk).update(queued_at=long_ago)
    waiting = BackupRun.objects.create(job=run.job, trigger=Trigger.PAGE)
    BackupRun.objects.filter(pk=waiting.pk).update(created=long_ago)

    assert sweep.sweep().resent == 2
    assert sent_again == [vm_backup.pk, f"start {waiting.pk}"]
    assert sweep.sweep().resent == 1, "the VM was sent again just now; the run still waits"


def test_cancelling_a_run_cancels_what_waits_and_stops_what_runs(
    live_pool, started_run, django_capture_on_commit_callbacks
) -> None:
    run, _ = started_run(live_pool("lab", vms=3), concurrency=2)
    first, second, third = run.vm_backups.order_by("pk")
    running_as(first, "host-a:1", task_started=False)
    with start_planned(first.task_id) as progress:
        with progress.subtask("transfer xvda", kind="transfer", total=100) as transfer:
            message = cancel.cancel_run(run, by="alice")
            assert message == (
                f"run {run.pk} is being cancelled: 1 running VM backup(s) asked to stop, "
                "2 waiting one(s) cancelled"
            )
            assert states(run) == ["running", "cancelled", "cancelled"]
            # The transfer stops at its next progress write, and no new step starts.
            with pytest.raises(TaskCancelled, match="cancelled on request"):
                transfer.flush()
        with (
            pytest.raises(TaskCancelled, match="not started, its parent task was cancelled"),
            task("commit", kind="commit"),
        ):
            pass
    with django_capture_on_commit_callbacks():
        vm_backups._end(
            first, VmBackupStatus.CANCELLED, "cancelled by alice", from_status="running"
        )
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.message == "cancelled by alice; 3 VM(s): 3 cancelled; 0 B written"
    assert Task.objects.get(pk=run.task_id).status == "cancelled"
    assert second.pk and third.pk
    with pytest.raises(cancel.CancelRefused) as refused:
        cancel.cancel_run(run, by="bob")
    assert (
        str(refused.value) == f"run {run.pk} of job nightly already ended (cancelled): "
        "nothing to cancel"
    )


def test_cancelling_one_waiting_vm_gives_its_slot_to_the_next(
    live_pool, started_run, django_capture_on_commit_callbacks
) -> None:
    run, _ = started_run(live_pool("lab", vms=3), concurrency=1)
    queued = run.vm_backups.order_by("pk").first()
    assert states(run) == ["queued", "pending", "pending"]
    with django_capture_on_commit_callbacks() as sent:
        assert cancel.cancel_vm(queued, by="alice") == "VM lab-vm0 cancelled before it started"
    assert states(run) == ["cancelled", "queued", "pending"] and len(sent) == 1
    with pytest.raises(cancel.CancelRefused, match=r"run \d+ has no VM 'nope' \(its VMs: lab-vm0"):
        cancel.find_vm(run, "nope")
    assert cancel.find_vm(run, "LAB-VM1").vm_name == "lab-vm1"


def test_a_process_killed_while_holding_a_vm_is_seen_dead_at_once(settings) -> None:
    """The pid check behind a redelivery: SIGKILL leaves no process, a live one is alive."""
    from backups.services.heartbeat import holder_is_dead

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not holder_is_dead(f"{settings.HOST_NAME}:{child.pid}")
        assert not holder_is_dead(f"another-host:{child.pid}")
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert holder_is_dead(f"{settings.HOST_NAME}:{child.pid}")
        assert not holder_is_dead(f"another-host:{child.pid}"), "only this host's pids count"
    finally:
        child.kill()
