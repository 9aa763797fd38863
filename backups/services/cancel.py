"""Cancel a run, or one VM of it (the run page, ``manage.py job_cancel RUN [--vm UUID]``).

What is waiting (a run not started yet, VMs pending or queued) is cancelled at once by a
conditional UPDATE; its message, if one is delivered later, finds nothing to claim. What runs is
asked to stop: the VM backup's ``cancel_requested``, and a cancel of its task tree
(``tasks.services.request_cancel_tree``). The worker's engine sees it at its next progress
write, or within a second while an export sends nothing, closes the export's connection (the
only way to stop an export: XAPI's ``task.cancel`` does not, docs/xapi.md §8.7), removes the
temporary files and the snapshot that was not exported, and the VM ends *cancelled*. Nothing
committed is touched: a backup whose metadata was written stays.
"""

from __future__ import annotations

from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import BackupRun, VmBackup
from backups.services import fanout, runs
from tasks import services as task_services

WAITING = [VmBackupStatus.PENDING, VmBackupStatus.QUEUED]


class CancelRefused(Exception):
    """Nothing to cancel; the message says why."""


def cancel_run(run: BackupRun, *, by: str) -> str:
    """Cancel a run; returns what was done, in a sentence."""
    now = timezone.now()
    by = by[:150] or "someone"
    if BackupRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
        status=RunStatus.CANCELLED,
        cancel_requested=True,
        cancelled_by=by,
        ended=now,
        message=f"cancelled by {by} before it started",
    ):
        runs.ended(run.pk)
        return f"run {run.pk} cancelled before it started"
    if not BackupRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        cancel_requested=True, cancelled_by=by
    ):
        run.refresh_from_db()
        raise CancelRefused(
            f"run {run.pk} of job {run.job.name} already ended ({run.status}): nothing to cancel"
        )
    waiting = VmBackup.objects.filter(run_id=run.pk, status__in=WAITING).update(
        status=VmBackupStatus.CANCELLED, ended=now, error=f"not started: cancelled by {by}"
    )
    running = list(VmBackup.objects.filter(run_id=run.pk, status=VmBackupStatus.RUNNING))
    for vm_backup in running:
        _stop(vm_backup)
    runs.finish_if_done(run.pk)
    return (
        f"run {run.pk} is being cancelled: {len(running)} running VM backup(s) asked to stop, "
        f"{waiting} waiting one(s) cancelled"
    )


def cancel_vm(vm_backup: VmBackup, *, by: str) -> str:
    """Cancel one VM of a run; returns what was done, in a sentence."""
    now = timezone.now()
    by = by[:150] or "someone"
    name = vm_backup.vm_name or vm_backup.vm_uuid
    if VmBackup.objects.filter(pk=vm_backup.pk, status__in=WAITING).update(
        status=VmBackupStatus.CANCELLED, ended=now, error=f"not started: cancelled by {by}"
    ):
        fanout.dispatch(vm_backup.run_id)  # its slot, if it was queued, goes to the next VM
        runs.finish_if_done(vm_backup.run_id)
        return f"VM {name} cancelled before it started"
    if not VmBackup.objects.filter(pk=vm_backup.pk, status=VmBackupStatus.RUNNING).update(
        cancel_requested=True
    ):
        vm_backup.refresh_from_db()
        raise CancelRefused(
            f"the backup of VM {name} in run {vm_backup.run_id} already ended "
            f"({vm_backup.status}): nothing to cancel"
        )
    BackupRun.objects.filter(pk=vm_backup.run_id, cancelled_by="").update(cancelled_by=by)
    _stop(vm_backup)
    return f"VM {name} is being cancelled: its worker stops the transfer within seconds"


def _stop(vm_backup: VmBackup) -> None:
    VmBackup.objects.filter(pk=vm_backup.pk).update(cancel_requested=True)
    if vm_backup.task_id:
        task_services.request_cancel_tree(vm_backup.task_id)


def find_vm(run: BackupRun, vm: str) -> VmBackup:
    """A VM of a run by uuid or name (``job_cancel --vm``, the page's form)."""
    found = (
        run.vm_backups.filter(vm_uuid=vm).first()
        or run.vm_backups.filter(vm_name__iexact=vm).first()
    )
    if found is None:
        names = ", ".join(run.vm_backups.values_list("vm_name", flat=True)) or "none"
        raise CancelRefused(f"run {run.pk} has no VM {vm!r} (its VMs: {names})")
    return found
