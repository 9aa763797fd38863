"""Runs at scale with the real parts: the simulator over HTTP, the watcher, Redis, worker
processes that start a fresh process per backup task (``--max-tasks-per-child=1``), a real SMTP
server, real files on the remote.

* 12 VMs with a concurrency of 3: never more than 3 VM backups at once (read from the task rows
  and the VM backup rows all along the run), all 12 backed up once each, although messages are
  duplicated by hand; the report mailed says what happened to each VM and disk; Flower and the
  logs name the tasks after their VM and job.
* SIGKILL of the process backing up one VM while a second job runs: that try is interrupted, the
  VM backed up again, the other VMs and the other job finish, and the next run leaves nothing
  behind (one snapshot per VM on the pool, only committed files on the remote).
* Cancel mid-transfer: the export is freed within 5 s and the remote is left as it was.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.backups.sites import WORKER_ENV, real_files, snapshots_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start_worker(start_celery_worker, concurrency: int, **env):
    return start_celery_worker(
        concurrency=concurrency, options=("--max-tasks-per-child=1",), **{**WORKER_ENV, **env}
    )


def new_job(name, vms, remote, **fields):
    from backups.models import BackupJob

    job = BackupJob.objects.create(name=name, vm_uuids=[vm.uuid for vm in vms], **fields)
    job.remotes.set([remote])
    return job


def run_now(job, **options):
    from backups.choices import Trigger
    from backups.services import runs

    return runs.request_run(job, trigger=Trigger.COMMAND, requested_by="tests", **options)


def wait_final(wait_for, run, timeout: float = 120):
    from backups.choices import RunStatus
    from backups.models import BackupRun

    return wait_for(
        lambda: BackupRun.objects.filter(pk=run.pk, status__in=RunStatus.final()).first(),
        timeout=timeout,
        message=f"run {run.pk} never ended",
    )


def every_file(root: Path) -> dict[str, int]:
    """Every file and folder of a remote, temporary ones too, with the files' sizes."""
    return {
        str(path.relative_to(root)): path.stat().st_size if path.is_file() else -1
        for path in root.rglob("*")
    }


def committed_files(remote_root) -> set[str]:
    """Every file the committed backups of a remote name: their metadata and their VHDs."""
    found = set()
    for metadata in remote_root.glob("xo-vm-backups/*/*.json"):
        found.add(str(metadata.relative_to(remote_root)))
        vm_folder = metadata.parent
        for vhd in json.loads(metadata.read_text())["vhds"].values():
            found.add(str((vm_folder / vhd).resolve().relative_to(remote_root.resolve())))
    return found


def test_twelve_vms_with_a_concurrency_of_three_each_backed_up_once_and_reported(
    backup_pool, make_remote, start_celery_worker, smtp_server, wait_for
) -> None:
    from backups.models import VmBackup, VmBackupDisk
    from backups.tasks import backup_vm
    from pools.models import VM
    from tasks.models import Task

    _sim, pool = backup_pool(vms=12, disk_size="1M")
    vms = list(VM.objects.guests().filter(pool=pool).order_by("name_label"))
    remote = make_remote("nas")
    job = new_job(
        "twelve",
        vms,
        remote,
        concurrency=3,
        report_when="always",
        report_to=["ops@example.com"],
    )
    # Four worker processes: the job's concurrency, not the workers, is what limits the run.
    worker = start_worker(start_celery_worker, 4, **smtp_server.env)
    run = run_now(job)

    most_tasks = most_rows = 0
    duplicated = set()
    while True:
        run.refresh_from_db()
        if run.is_final:
            break
        if run.task_id:
            vm_tasks = Task.objects.filter(parent_id=run.task_id, kind="vm", status="running")
            most_tasks = max(most_tasks, vm_tasks.count())
        active = VmBackup.objects.filter(run=run, status__in=["queued", "running"])
        most_rows = max(most_rows, active.count())
        # A message delivered twice while its VM is backed up: it must change nothing.
        for pk in active.filter(status="running").values_list("pk", flat=True):
            if pk not in duplicated and len(duplicated) < 3:
                backup_vm.apply_async((pk,))
                duplicated.add(pk)
        time.sleep(0.05)
    assert run.status == "success", run.message
    # Never more than the concurrency; the rows show it used (a VM task of a 1 MiB disk lasts
    # a fraction of a second: on a loaded machine the samples may miss three tasks at once).
    assert most_rows == 3 and 1 <= most_tasks <= 3, (most_tasks, most_rows)
    rows = list(VmBackup.objects.filter(run=run))
    assert len(rows) == 12 and {row.status for row in rows} == {"success"}
    assert {row.attempt for row in rows} == {1}
    assert len(duplicated) == 3

    # And again once the run has ended: nothing changes.
    for pk in list(duplicated)[:2]:
        backup_vm.apply_async((pk,)).get(timeout=30)
    metadata = list(Path(remote.path).glob("xo-vm-backups/*/*.json"))
    assert len(metadata) == 12, "one backup per VM, whatever the duplicates"
    assert worker.log().count("this message changes nothing") >= 5

    # Flower and the worker's log show the tasks by VM and job.
    assert f"Task backup VM {vms[0].name_label} · job twelve · run {run.pk}[" in worker.log()
    assert f"Task start run {run.pk} of job twelve[" in worker.log()

    # The report: per VM what happened, per disk the mode and why, sizes, durations, speeds.
    [mail] = smtp_server.wait(1)
    assert mail["Subject"] == f"[xoweb] backup twelve: success (run {run.pk})"
    assert mail["To"] == "ops@example.com"
    text = mail.get_body(("plain",)).get_content()
    assert "12 VM(s): 12 succeeded" in text
    for vm in vms:
        assert f"VM {vm.name_label} ({vm.uuid}): backed up" in text
    disks = VmBackupDisk.objects.filter(vm_backup__run=run).count()
    disk_lines = [line for line in text.splitlines() if line.startswith("  disk ")]
    assert disks >= 12 and len(disk_lines) == disks
    assert all(": full — full: first backup of this disk" in line for line in disk_lines)
    sizes = [line for line in text.splitlines() if line.strip().startswith("size ")]
    assert len(sizes) == disks and all(" in " in line and "/s" in line for line in sizes)
    assert f"/backups/runs/{run.pk}/" in text
    html = mail.get_body(("html",)).get_content()
    assert html.count('class="vm-backup"') == 12
    run.refresh_from_db()
    assert run.reported_at is not None and run.report_error == ""


def test_a_killed_vm_backup_is_tried_again_while_everything_else_finishes(
    backup_pool, make_remote, start_celery_worker, wait_for, tmp_path
) -> None:
    from backups.models import VmBackup, VmBackupDisk
    from pools.models import VM
    from tasks.models import Task

    sim, pool = backup_pool(vms=3, disk_size="4M")
    vms = list(VM.objects.guests().filter(pool=pool).order_by("name_label"))
    remote = make_remote("nas")
    first = new_job("first", vms[:2], remote, concurrency=2)
    second = new_job("second", vms[2:], remote)
    worker = start_worker(start_celery_worker, 3)

    sim.sim("set_rate_limit", 2 * 2**20)
    runs = [run_now(first), run_now(second)]

    def transferring():
        vm_backup = VmBackup.objects.filter(
            run=runs[0], status="running", vm_uuid=vms[0].uuid
        ).first()
        moving = vm_backup and Task.objects.filter(
            parent_id=vm_backup.task_id, kind="transfer", status="running", done__gt=0
        )
        return vm_backup if moving and moving.exists() else None

    victim = wait_for(transferring, timeout=60, message="the first VM's transfer never started")
    pid = int(victim.worker.rpartition(":")[2])
    assert pid in worker.children(), "each VM is backed up in a worker's child process"
    os.kill(pid, signal.SIGKILL)
    sim.sim("set_rate_limit", 0)

    first_run, second_run = (wait_final(wait_for, run) for run in runs)
    assert second_run.status == "success", second_run.message
    assert first_run.status == "success", first_run.message
    assert "; 1 backed up again after their worker died" in first_run.message
    retried = VmBackup.objects.get(run=first_run, vm_uuid=vms[0].uuid)
    [killed] = retried.earlier_attempts
    assert killed["status"] == "interrupted" and killed["worker"] == victim.worker
    assert killed["error"] == (
        f"interrupted: the worker process backing it up ({victim.worker}) died; backing it up again"
    )
    assert (retried.status, retried.attempt) == ("success", 2)
    assert VmBackup.objects.get(run=first_run, vm_uuid=vms[1].uuid).attempt == 1

    # The next run: deltas on the bases of the retried backups, and nothing left behind.
    after = wait_final(wait_for, run_now(first))
    assert after.status == "success", after.message
    modes = set(
        VmBackup.objects.get(run=after, vm_uuid=vms[0].uuid).disks.values_list("mode", flat=True)
    )
    assert modes == {"delta"}
    backed_up = set(
        VmBackupDisk.objects.filter(vm_backup__run__in=[after, second_run]).values_list(
            "vdi_uuid", flat=True
        )
    )
    assert snapshots_of(sim) == dict.fromkeys(backed_up, 1), "one per disk: the next base"
    root = Path(remote.path)
    assert set(real_files(root)) == committed_files(root)
    assert not list(root.glob("xo-vm-backups/*.lock")), "every lock was released or broken"


def test_cancel_mid_transfer_frees_the_export_within_five_seconds(
    backup_pool, make_remote, start_celery_worker, run_manage, wait_for
) -> None:
    from backups.models import VmBackup
    from pools.models import VM
    from tasks.models import Task

    sim, pool = backup_pool(vms=1, disk_size="4M")
    vm = VM.objects.guests().get(pool=pool)
    remote = make_remote("nas")
    job = new_job("nightly", [vm], remote)
    start_worker(start_celery_worker, 1)
    assert wait_final(wait_for, run_now(job)).status == "success"
    root = Path(remote.path)
    before = every_file(root)
    snapshots_before = snapshots_of(sim)

    sim.sim("set_rate_limit", 2**19)
    run = run_now(job, force_full=True)  # fulls of every disk, at 512 KiB/s: seconds of work
    wait_for(
        lambda: Task.objects.filter(kind="transfer", status="running", done__gt=2**18).exists(),
        timeout=60,
        message="the transfer never got going",
    )
    asked = time.monotonic()
    done = run_manage("job_cancel", str(run.pk))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"run {run.pk} is being cancelled: 1 running VM backup(s) asked to stop, 0 waiting "
        "one(s) cancelled"
    )
    xenapi = sim.session().xenapi

    def freed() -> bool:
        exports = [
            task
            for task in xenapi.task.get_all_records().values()
            if task["name_label"].startswith("xoweb export") and task["status"] == "pending"
        ]
        return not exports and snapshots_of(sim) == snapshots_before

    wait_for(freed, timeout=5, message="the export was not freed within 5 s of the cancel")
    took = time.monotonic() - asked
    ended = wait_final(wait_for, run, timeout=10)
    assert ended.status == "cancelled", ended.message
    assert ended.message.startswith("cancelled by manage.py job_cancel; 1 VM(s): 1 cancelled")
    vm_backup = VmBackup.objects.get(run=run)
    assert vm_backup.status == "cancelled"
    assert vm_backup.error.startswith("cancelled by manage.py job_cancel: the transfer was stopped")
    after = every_file(root)
    assert after == before, "the remote is left as it was"
    assert took < 5

    # The job's per-VM timeout stops a backup the same way, and says so.
    job.vm_timeout = 1
    job.save()
    timed_out = wait_final(wait_for, run_now(job, force_full=True), timeout=30)
    vm_backup = VmBackup.objects.get(run=timed_out)
    assert (timed_out.status, vm_backup.status) == ("failed", "failed")
    assert vm_backup.error.startswith(
        "took longer than the job's per-VM timeout (1 s): stopped, its partial files and "
        "snapshot removed"
    )
    assert every_file(root) == before and snapshots_of(sim) == snapshots_before
