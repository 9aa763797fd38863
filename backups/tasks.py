"""Celery tasks of the backups app: thin, each loads its row by id and calls a service.

Runs, VM backups and restores are backup tasks (``xoweb.delivery.backup_task``, names under
``backups.tasks.``): on the ``backups`` queue, acknowledged late and given back to the broker
when their worker dies, so each may be delivered twice and claims its row with a conditional
UPDATE first (:mod:`backups.services.runs`, ``vm_backups``, ``restores``; verifications and
restore tests: ``check_claims``). The check of a remote and the re-reading of its backups touch
the remote's files too, and are harmless twice.

The sweep and the mailing of a report are short tasks (names ``backups.<name>``, the default
queue): the sweep runs again on its period, and a report is claimed once on its run.
"""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.conf import settings

from backups.models import BackupJob, Remote
from backups.services import (
    after_run,
    health_checks,
    maintenance,
    outlook,
    remotes,
    reports,
    restore_points,
    restores,
    runs,
    snapshot_janitor,
    sweep,
    verification,
    vm_backups,
)
from xoweb.delivery import backup_task


@backup_task("backups.tasks.run_schedule")
def run_schedule(schedule_id: int, fired_at: str | None = None) -> str:
    """Fired by beat: record the schedule's run for this moment (once) and start it."""
    run = runs.fire(schedule_id, datetime.fromisoformat(fired_at) if fired_at else None)
    return "nothing to run" if run is None else f"run {run.pk}: {run.status}"


@backup_task("backups.tasks.start_run")
def start_run(run_id: int) -> None:
    """Claim a queued run, resolve its VMs and send the first of them to the workers."""
    runs.start(run_id)


@backup_task("backups.tasks.backup_vm")
def backup_vm(vm_backup_id: int) -> str:
    """Back up one VM of a run, then send the next waiting VM (or finish the run)."""
    return vm_backups.run(vm_backup_id)


@backup_task("backups.tasks.restore")
def restore(restore_id: int) -> str:
    """Do one recorded restore."""
    return restores.run(restore_id)


@backup_task("backups.tasks.check_remote")
def check_remote(remote_id: int) -> str:
    """Write-test a remote and record its space."""
    remote = Remote.objects.filter(pk=remote_id).first()
    if remote is None:
        return "gone"
    return remotes.check(remote).message


@backup_task("backups.tasks.rebuild_restore_points")
def rebuild_restore_points(remote_id: int) -> str:
    """Re-read a remote's backups into the restore point index."""
    remote = Remote.objects.filter(pk=remote_id).first()
    if remote is None:
        return "gone"
    rebuilt = restore_points.rebuild(remote)
    return f"{rebuilt.indexed} restore point(s) indexed, {rebuilt.removed} removed"


@backup_task("backups.tasks.read_remote_spaces")
def read_remote_spaces() -> str:
    """Hourly (beat): check every enabled remote, which reads its space for the storage
    outlook, and drop the readings older than OUTLOOK_HISTORY_DAYS."""
    results = [
        f"{remote.name}: {remotes.check(remote).message}"
        for remote in Remote.objects.filter(enabled=True).order_by("name")
    ]
    pruned = outlook.prune()
    return "; ".join(results) + f"; {pruned} old reading(s) deleted"


@shared_task(name="backups.sweep_runs")
def sweep_runs() -> str:
    """Periodic: take over the VM backups of dead workers, resend lost messages, fill slots."""
    return str(sweep.sweep())


@shared_task(name="backups.send_run_report")
def send_run_report(run_id: int) -> str:
    """Mail the report of an ended run (once)."""
    return reports.send(run_id)


@backup_task("backups.tasks.verify")
def verify(verification_id: int) -> str:
    """Do one recorded verification of a remote's backups."""
    return verification.run(verification_id)


@backup_task("backups.tasks.health_check")
def health_check(health_check_id: int) -> str:
    """Do one recorded restore test."""
    return health_checks.run(health_check_id)


@backup_task("backups.tasks.check_run")
def check_run(run_id: int) -> dict:
    """Do what the run's schedule proves after it: verifications, then restore tests."""
    return after_run.check(run_id)


@backup_task("backups.tasks.merge_vm")
def merge_vm(remote_id: int, vm_uuid: str) -> str:
    """The merges a VM backup left on a remote (and the clean pass around them), off the
    backup window; under the VM folder's lock, so a second delivery waits its turn or finds
    nothing left to do."""
    remote = Remote.objects.filter(pk=remote_id).first()
    if remote is None:
        return "gone"
    return maintenance.run_task(
        remote, vm_uuids=[vm_uuid], merges=settings.BACKUP_MERGES_PER_TASK or None,
        trigger="merge task",
    )  # fmt: skip


@backup_task("backups.tasks.clean_remote")
def clean_remote(remote_id: int, dry_run: bool = False) -> str:
    """The clean pass over every VM folder of a remote (the remote page's button)."""
    remote = Remote.objects.filter(pk=remote_id).first()
    if remote is None:
        return "gone"
    return maintenance.run_task(
        remote,
        dry_run=dry_run,
        trigger="remote page",
        merges=settings.BACKUP_MERGES_PER_TASK or None,
    )


@backup_task("backups.tasks.prune_job")
def prune_job(job_id: int) -> str:
    """Every schedule's retention of a job on its remotes now, then the clean pass there
    (the job page's button; ``backup_prune`` does the same in its own process)."""
    job = BackupJob.objects.filter(pk=job_id).first()
    if job is None:
        return "gone"
    return maintenance.run_prune_task(job, merges=settings.BACKUP_MERGES_PER_TASK or None)


@backup_task("backups.tasks.sweep_snapshots")
def sweep_snapshots() -> dict:
    """The snapshot janitor of every live pool (hourly, from beat). A second delivery sweeps
    again, which finds nothing more to do."""
    results = snapshot_janitor.sweep_all()
    return {
        pool: (found if isinstance(found, str) else len(found)) for pool, found in results.items()
    }
