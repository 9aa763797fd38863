"""Back up one VM of a run (the ``backup_vm`` Celery task), then hand the run on.

Steps: claim the VM backup (``queued → running``, once); beat; log in to its pool; call the
engine with the job's and schedule's values, the run's usable remotes and the VM's task as
progress (the engine also applies the schedule's retention and runs the clean pass, with a
bounded number of merges); store the outcome (status, per disk mode and reason, bytes, files)
and the clean passes' reports, queue a merge task where merges were left; index the VM's
restore points; free the slot (send the next waiting VM) and finish the run if this was its
last VM. Whatever happens in the middle, the last three steps run.
"""

from __future__ import annotations

import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import Remote, VmBackup, VmBackupDisk
from backups.services import bridge, maintenance, restore_points, runs, verification
from backups.services.heartbeat import beating, holder_is_dead, holder_name
from pools.services import client_for
from tasks.reporter import TaskNotStartable, start_planned

logger = logging.getLogger(__name__)

#: Outcome statuses of the engine → ours.
ENGINE_STATUS = {
    "success": VmBackupStatus.SUCCESS,
    "partial": VmBackupStatus.PARTIAL,
    "failed": VmBackupStatus.FAILED,
    "skipped": VmBackupStatus.SKIPPED,
}


def claim(vm_backup_id: int) -> VmBackup | None:
    """``queued → running`` while the run is running; the row when claimed, else None.

    A redelivered message finds the row running or ended and changes nothing, except when the
    process recorded as running it is proven dead (same host, no such pid): that VM backup is
    marked interrupted so that the run goes on.
    """
    now = timezone.now()
    holder = holder_name()
    claimed = VmBackup.objects.filter(
        pk=vm_backup_id, status=VmBackupStatus.QUEUED, run__status=RunStatus.RUNNING
    ).update(status=VmBackupStatus.RUNNING, started=now, heartbeat=now, worker=holder)
    row = VmBackup.objects.select_related("run", "run__job", "run__schedule", "pool").filter(
        pk=vm_backup_id
    )
    vm_backup = row.first()
    if vm_backup is None:
        logger.warning("VM backup %s is gone", vm_backup_id)
        return None
    if claimed:
        return vm_backup
    if vm_backup.status == VmBackupStatus.RUNNING and holder_is_dead(vm_backup.worker):
        _end(
            vm_backup,
            VmBackupStatus.INTERRUPTED,
            f"interrupted: the worker process backing it up ({vm_backup.worker}) died",
            from_status=VmBackupStatus.RUNNING,
        )
    elif vm_backup.status == VmBackupStatus.QUEUED and vm_backup.run.status != RunStatus.RUNNING:
        _end(
            vm_backup,
            VmBackupStatus.CANCELLED,
            f"not started: the run is {vm_backup.run.get_status_display().lower()}",
            from_status=VmBackupStatus.QUEUED,
        )
    else:
        logger.info(
            "VM backup %s is %s (worker %s): this message changes nothing",
            vm_backup.pk,
            vm_backup.status,
            vm_backup.worker or "-",
        )
    return None


def run(vm_backup_id: int) -> str:
    """Back up one VM (see the module doc); returns its final status."""
    vm_backup = claim(vm_backup_id)
    if vm_backup is None:
        return "not claimed"
    status, error = VmBackupStatus.FAILED, ""
    try:
        with beating(vm_backup):
            status, error = _back_up(vm_backup)
    except SoftTimeLimitExceeded:
        status = VmBackupStatus.FAILED
        error = (
            f"took longer than the job's per-VM timeout ({vm_backup.run.job.vm_timeout} s): "
            "stopped; raise the timeout or look at the pool's export speed"
        )
    except TaskNotStartable as why:
        status, error = VmBackupStatus.INTERRUPTED, f"its task could not start: {why}"
    except Exception as failure:
        logger.exception("backup of VM %s failed", vm_backup.vm_uuid)
        status, error = VmBackupStatus.FAILED, str(failure) or type(failure).__name__
    finally:
        _end(vm_backup, status, error, from_status=VmBackupStatus.RUNNING)
    return status


def _back_up(vm_backup: VmBackup) -> tuple[str, str]:
    backup_run = vm_backup.run
    job = backup_run.job
    remotes = list(Remote.objects.filter(uuid__in=list(backup_run.remotes)).order_by("name"))
    adapters = [bridge.remote_adapter(remote) for remote in remotes]
    errors = bridge.engine_errors()
    with start_planned(vm_backup.task_id) as progress:
        if vm_backup.pool is None:
            raise RuntimeError(f"the pool of VM {vm_backup.vm_name} was removed from xoweb")
        try:
            with client_for(vm_backup.pool) as client:
                outcome = bridge.backup_vm(
                    client,
                    vm_backup.vm_uuid,
                    job=bridge.job_settings(job),
                    schedule=bridge.schedule_settings(
                        job, backup_run.schedule, force_full=backup_run.force_full
                    ),
                    remotes=adapters,
                    progress=progress,
                    holder=f"{vm_backup.worker}/vm-backup-{vm_backup.pk}",
                    lock_lease=float(settings.BACKUP_LOCK_LEASE_SECONDS),
                    lock_heartbeat=float(settings.BACKUP_LOCK_HEARTBEAT_SECONDS),
                    merges_per_run=settings.BACKUP_MERGES_PER_RUN,
                    merge_batch_bytes=maintenance.merge_batch_bytes(),
                    lock_wait=float(settings.BACKUP_LOCK_WAIT_SECONDS),
                    # A base whose file failed verification is never built on: a full instead.
                    known_bad=verification.known_bad(remotes),
                )
        except errors.ChainUnhealthy as why:
            progress.warning(f"skipped: {why}")
            return VmBackupStatus.SKIPPED, f"skipped: {why}"
        by_id = {str(remote.uuid): remote for remote in remotes}
        _store(vm_backup, outcome, by_id)
        for name in maintenance.after_backup(vm_backup, outcome, by_id):
            progress.info(f"merges left on {name}: a merge task will do them")
        status = ENGINE_STATUS.get(outcome.status, VmBackupStatus.FAILED)
        if status in (VmBackupStatus.FAILED,):
            # The task tree shows the failure where the person looks.
            progress.error(outcome.error or "the backup failed")
        for remote in remotes:
            try:
                restore_points.rebuild(remote, vm_uuid=vm_backup.vm_uuid)
            except Exception as failure:
                progress.warning(f"restore points of {remote.name} not re-indexed: {failure}")
        return status, outcome.error


def _store(vm_backup: VmBackup, outcome, remotes: dict[str, Remote]) -> None:
    """The engine's outcome → the VM backup's columns and one row per disk."""
    names = {remote_id: remote.name for remote_id, remote in remotes.items()}
    disks = [
        VmBackupDisk(
            vm_backup=vm_backup,
            vdi_uuid=disk.vdi_uuid,
            vdi_name=disk.vdi_name[:255],
            userdevice=str(disk.userdevice)[:16],
            snapshot_vdi_uuid=disk.snapshot_vdi_uuid,
            mode=str(disk.mode),
            reason_code=str(disk.reason_code or ""),
            reason=disk.reason,
            size=int(disk.size),
            bytes=int(disk.bytes),
            duration=float(disk.duration),
            files=dict(disk.files),
            sha256=disk.sha256,
        )
        for disk in outcome.disks
    ]
    with transaction.atomic():
        VmBackupDisk.objects.filter(vm_backup=vm_backup).delete()
        VmBackupDisk.objects.bulk_create(disks)
        VmBackup.objects.filter(pk=vm_backup.pk).update(
            vm_name=(outcome.vm_name or vm_backup.vm_name)[:255],
            timestamp=outcome.timestamp or "",
            snapshot_uuid=outcome.snapshot_uuid or "",
            metadata=dict(outcome.metadata),
            failed_remotes={
                names.get(remote_id, remote_id): why
                for remote_id, why in outcome.failed_remotes.items()
            },
            skipped_disks=[list(item) for item in outcome.skipped_disks],
            bytes=sum(disk.bytes for disk in disks),
        )


def _end(vm_backup: VmBackup, status: str, error: str, *, from_status: str) -> None:
    """``from_status → status`` once, then free the slot and finish the run if it was the last."""
    now = timezone.now()
    ended = VmBackup.objects.filter(pk=vm_backup.pk, status=from_status).update(
        status=status, error=error[:10_000], ended=now, heartbeat=now
    )
    if not ended:
        return
    try:
        runs.dispatch(vm_backup.run_id)
    finally:
        runs.finish_if_done(vm_backup.run_id)
