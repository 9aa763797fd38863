"""Back up one VM of a run (the ``backup_vm`` Celery task), then hand the run on.

Steps: claim the VM backup (``queued → running``, once per try); beat; log in to its pool; call
the engine with the job's and schedule's values, the run's usable remotes and the VM's task as
progress (the engine also applies the schedule's retention and runs the clean pass, with a
bounded number of merges); store the clean passes' reports and queue a merge task where merges
were left; index the VM's restore points; store the outcome (status, per disk mode and reason,
bytes, files) in the same conditional write that ends the try; free the slot (send the next
waiting VM, of this run then of the runs waiting on the pool) and finish the run if this was
its last VM. Whatever happens in the middle, the last three steps run.

A message may be delivered twice (docs/architecture.md §Celery delivery). A second delivery
finds the VM backup running under a live holder, or ended, and changes nothing; one that finds
it running under a dead holder hands it to :mod:`backups.services.takeover` and, when the VM is
to be backed up again, claims the next try itself.
"""

from __future__ import annotations

import logging
import threading

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import Remote, VmBackup, VmBackupDisk
from backups.services import (
    bridge,
    maintenance,
    restore_points,
    runs,
    takeover,
    verification,
)
from backups.services.heartbeat import beating, holder_name, why_dead
from pools.services import client_for
from tasks import services as task_services
from tasks.reporter import TaskCancelled, TaskInterrupted, TaskNotStartable, start_planned

logger = logging.getLogger(__name__)

#: Outcome statuses of the engine → ours.
ENGINE_STATUS = {
    "success": VmBackupStatus.SUCCESS,
    "partial": VmBackupStatus.PARTIAL,
    "failed": VmBackupStatus.FAILED,
    "skipped": VmBackupStatus.SKIPPED,
}


def _load(vm_backup_id: int) -> VmBackup | None:
    return (
        VmBackup.objects.select_related("run", "run__job", "run__schedule", "pool", "task")
        .filter(pk=vm_backup_id)
        .first()
    )


def claim(vm_backup_id: int) -> VmBackup | None:
    """``queued → running`` while the run is running; the row when claimed, else None.

    A redelivered message finds the row running or ended and changes nothing, unless the
    process running it is dead (:func:`backups.services.heartbeat.why_dead`): then the try is
    taken over, and when the VM is to be backed up again this message claims the next try.
    """
    for _ in range(2):
        now = timezone.now()
        claimed = VmBackup.objects.filter(
            pk=vm_backup_id, status=VmBackupStatus.QUEUED, run__status=RunStatus.RUNNING
        ).update(status=VmBackupStatus.RUNNING, started=now, heartbeat=now, worker=holder_name())
        vm_backup = _load(vm_backup_id)
        if vm_backup is None:
            logger.warning("VM backup %s is gone", vm_backup_id)
            return None
        if claimed:
            return vm_backup
        if vm_backup.status == VmBackupStatus.QUEUED and vm_backup.run.status != RunStatus.RUNNING:
            _end(
                vm_backup,
                VmBackupStatus.CANCELLED,
                f"not started: the run is {vm_backup.run.get_status_display().lower()}",
                from_status=VmBackupStatus.QUEUED,
            )
            return None
        why = why_dead(vm_backup) if vm_backup.status == VmBackupStatus.RUNNING else ""
        if not why or takeover.take_over(vm_backup, why, send=False) != VmBackupStatus.QUEUED:
            logger.info(
                "VM backup %s is %s (try %s, worker %s): this message changes nothing",
                vm_backup.pk,
                vm_backup.status,
                vm_backup.attempt,
                vm_backup.worker or "-",
            )
            return None
    return None


def run(vm_backup_id: int) -> str:
    """Back up one VM (see the module doc); returns its final status."""
    vm_backup = claim(vm_backup_id)
    if vm_backup is None:
        return "not claimed"
    status, error, outcome = VmBackupStatus.FAILED, "", None
    deadline = Deadline(vm_backup)
    try:
        with beating(vm_backup), deadline:
            status, error, outcome = _back_up(vm_backup)
    except (SoftTimeLimitExceeded, TaskCancelled) as stopped:
        if deadline.passed or isinstance(stopped, SoftTimeLimitExceeded):
            status, error = VmBackupStatus.FAILED, deadline.message()
        else:
            status, error = VmBackupStatus.CANCELLED, _cancel_message(vm_backup)
    except TaskInterrupted as why:
        status, error = VmBackupStatus.INTERRUPTED, f"interrupted: {why}"
    except TaskNotStartable as why:
        status, error = VmBackupStatus.INTERRUPTED, f"its task could not start: {why}"
    except Exception as failure:
        logger.exception("backup of VM %s failed", vm_backup.vm_uuid)
        status, error = VmBackupStatus.FAILED, str(failure) or type(failure).__name__
    finally:
        _end(vm_backup, status, error, from_status=VmBackupStatus.RUNNING, outcome=outcome)
    return status


class Deadline:
    """The job's per-VM timeout, kept by this process: when it passes, the backup is stopped
    the way a cancel stops it (its task tree is asked to stop: the transfer's connection is
    closed, the snapshot and the partial files removed), and ends *failed*, saying why."""

    def __init__(self, vm_backup: VmBackup) -> None:
        self.vm_backup = vm_backup
        self.seconds = vm_backup.run.job.vm_timeout
        self.passed = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Deadline:
        if self.seconds:
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        self.passed = True
        try:
            if self.vm_backup.task_id:
                task_services.request_cancel_tree(self.vm_backup.task_id)
        finally:
            connection.close()  # this timer's thread had its own connection

    def message(self) -> str:
        return (
            f"took longer than the job's per-VM timeout ({self.seconds} s): stopped, its "
            "partial files and snapshot removed; raise the timeout or look at the pool's "
            "export speed"
        )


def _cancel_message(vm_backup: VmBackup) -> str:
    row = VmBackup.objects.filter(pk=vm_backup.pk).select_related("run").first()
    by = (row.run.cancelled_by if row else "") or "a person"
    return (
        f"cancelled by {by}: the transfer was stopped; its partial files and the snapshot "
        "that was not exported were removed, and nothing committed was touched"
    )


def _back_up(vm_backup: VmBackup):
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
            return VmBackupStatus.SKIPPED, f"skipped: {why}", None
        by_id = {str(remote.uuid): remote for remote in remotes}
        for name in maintenance.after_backup(vm_backup, outcome, by_id):
            progress.info(f"merges left on {name}: a merge task will do them")
        status = ENGINE_STATUS.get(outcome.status, VmBackupStatus.FAILED)
        if status == VmBackupStatus.FAILED:
            # The task tree shows the failure where the person looks.
            progress.error(outcome.error or "the backup failed")
        for remote in remotes:
            try:
                restore_points.rebuild(remote, vm_uuid=vm_backup.vm_uuid)
            except Exception as failure:
                progress.warning(f"restore points of {remote.name} not re-indexed: {failure}")
        return status, outcome.error, (outcome, {str(r.uuid): r.name for r in remotes})


def _outcome_rows(vm_backup: VmBackup, outcome, names: dict[str, str]):
    """The engine's outcome → the VM backup's columns and one row per disk."""
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
    columns = {
        "vm_name": (outcome.vm_name or vm_backup.vm_name)[:255],
        "timestamp": outcome.timestamp or "",
        "snapshot_uuid": outcome.snapshot_uuid or "",
        "metadata": dict(outcome.metadata),
        "failed_remotes": {
            names.get(remote_id, remote_id): why
            for remote_id, why in outcome.failed_remotes.items()
        },
        "skipped_disks": [list(item) for item in outcome.skipped_disks],
        "bytes": sum(disk.bytes for disk in disks),
    }
    return columns, disks


def _end(vm_backup: VmBackup, status: str, error: str, *, from_status: str, outcome=None) -> bool:
    """``from_status → status`` once for this try (with the engine's outcome, if any), then
    free the slot and finish the run if it was the last. False when the row had moved on (a
    cancel, a takeover after this process was taken for dead): what this try found is dropped.
    """
    now = timezone.now()
    columns, disks = ({}, [])
    if outcome is not None:
        columns, disks = _outcome_rows(vm_backup, *outcome)
    with transaction.atomic():
        ended = VmBackup.objects.filter(
            pk=vm_backup.pk, status=from_status, attempt=vm_backup.attempt
        ).update(status=status, error=error[:10_000], ended=now, heartbeat=now, **columns)
        if ended and disks:
            VmBackupDisk.objects.filter(vm_backup=vm_backup).delete()
            VmBackupDisk.objects.bulk_create(disks)
    if not ended:
        logger.warning(
            "VM backup %s (try %s) was no longer %s: its end (%s) is not recorded",
            vm_backup.pk,
            vm_backup.attempt,
            from_status,
            status,
        )
        return False
    runs.vm_ended(vm_backup)
    return True
