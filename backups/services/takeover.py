"""A VM backup whose worker died: back the VM up again, or end the backup with the reason.

Called by the sweep (:mod:`backups.services.sweep`) and by a redelivered message that finds its
VM backup running under a dead holder (:mod:`backups.services.vm_backups`); both have decided
with :func:`backups.services.heartbeat.why_dead`. What happens:

* the run was cancelled, or the VM's cancel was asked → *cancelled*;
* it ran past the job's hard time limit (Celery killed it) → *failed*, saying so;
* tries are left (``BACKUP_INTERRUPTED_RETRIES``) → the try is recorded in
  ``earlier_attempts`` and the VM goes back to *queued* under the next try number, with a new
  planned task; the old task tree is ended *interrupted*. The engine's janitor removes the dead
  try's snapshot at the next try's start, its lock is broken (at once on the same machine, else
  when its lease ends), and its temporary files are left for the clean pass;
* else → *interrupted*, with the reason.

Every write is conditional on the row being the same try, still running, with the heartbeat
that was read: a holder that beats in between (it was only slow) keeps its VM.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import VmBackup
from backups.services import fanout, runs
from pools.models import VM
from tasks import services as task_services
from tasks.choices import TaskStatus
from tasks.reporter import attach

logger = logging.getLogger(__name__)

#: Seconds past a job's per-VM timeout after which Celery's hard limit has killed the process.
HARD_LIMIT_MARGIN = 60


def decide(vm_backup: VmBackup, why: str, now: datetime) -> tuple[str, str]:
    """The status the dead try leads to (``queued``: try again) and the message."""
    run, job = vm_backup.run, vm_backup.run.job
    if run.cancel_requested or vm_backup.cancel_requested:
        by = run.cancelled_by or "a person"
        return VmBackupStatus.CANCELLED, f"cancelled by {by}; then {why}"
    if run.status != RunStatus.RUNNING:
        return VmBackupStatus.INTERRUPTED, f"interrupted: {why}, and its run had ended"
    if job.vm_timeout and vm_backup.started:
        ran = (now - vm_backup.started).total_seconds()
        if ran >= job.vm_timeout + HARD_LIMIT_MARGIN:
            return VmBackupStatus.FAILED, (
                f"took longer than the job's per-VM timeout ({job.vm_timeout} s) and was "
                "killed at the hard limit; raise the timeout or look at the pool's export speed"
            )
    if vm_backup.attempt <= settings.BACKUP_INTERRUPTED_RETRIES:
        return VmBackupStatus.QUEUED, f"interrupted: {why}; backing it up again"
    tries = vm_backup.attempt
    return VmBackupStatus.INTERRUPTED, (
        f"interrupted: {why}" + (f" (try {tries}, none left)" if tries > 1 else "")
    )


def take_over(vm_backup: VmBackup, why: str, *, send: bool = True) -> str:
    """Handle a dead try (see the module docstring); returns the VM backup's new status, or
    "" when the row changed meanwhile (another process took it over, or the holder beat).

    ``send=False``: the caller (a redelivered message) claims the requeued try itself.
    """
    now = timezone.now()
    status, message = decide(vm_backup, why, now)
    same_try = VmBackup.objects.filter(
        pk=vm_backup.pk,
        status=VmBackupStatus.RUNNING,
        attempt=vm_backup.attempt,
        heartbeat=vm_backup.heartbeat,
    )
    record = {
        "attempt": vm_backup.attempt,
        "worker": vm_backup.worker,
        "started": vm_backup.started.isoformat() if vm_backup.started else None,
        "ended": now.isoformat(),
        "status": status if status != VmBackupStatus.QUEUED else VmBackupStatus.INTERRUPTED,
        "error": message,
    }
    old_task = vm_backup.task_id
    with transaction.atomic():
        if status == VmBackupStatus.QUEUED:
            new_task = _plan_next_try(vm_backup)
            changed = same_try.update(
                status=VmBackupStatus.QUEUED,
                attempt=vm_backup.attempt + 1,
                earlier_attempts=[*vm_backup.earlier_attempts, record],
                worker="",
                started=None,
                heartbeat=None,
                queued_at=now,
                error="",
                task=new_task,
            )
            if not changed and new_task is not None:
                new_task.delete()
        else:
            changed = same_try.update(status=status, error=message, ended=now)
    if not changed:
        return ""
    logger.warning("VM backup %s (%s): %s", vm_backup.pk, vm_backup.vm_name, message)
    if old_task:
        ended_as = TaskStatus.CANCELLED if status == "cancelled" else TaskStatus.INTERRUPTED
        task_services.end_tree(old_task, ended_as, message)
    if status == VmBackupStatus.QUEUED:
        if send:
            transaction.on_commit(lambda: fanout.send(vm_backup.pk))
        return status
    runs.vm_ended(vm_backup)
    return status


def _plan_next_try(vm_backup: VmBackup):
    """A pending task under the run's task for the next try (its estimate joins the run's)."""
    run = vm_backup.run
    if not run.task_id:
        return None
    root = attach(run.task_id)
    old = vm_backup.task
    name = vm_backup.vm_name or vm_backup.vm_uuid
    about = VM.objects.filter(pool_id=vm_backup.pool_id, uuid=vm_backup.vm_uuid).first()
    return root.plan(
        f"Backup of VM {name} (try {vm_backup.attempt + 1})",
        kind="vm",
        total=old.total if old is not None else None,
        about=about or name,
    )
