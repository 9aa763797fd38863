"""Celery tasks of the backups app: thin, each loads its row by id and calls a service.

They are routed to the ``backups`` queue (``CELERY_TASK_ROUTES``). Every one of them is safe to
run twice (messages are acknowledged late and redelivered when a worker dies): each claims its
row with a conditional UPDATE first (:mod:`backups.services.runs`, ``vm_backups``,
``restores``).
"""

from __future__ import annotations

from celery import shared_task

from backups.models import Remote
from backups.services import remotes, restore_points, restores, runs, vm_backups


@shared_task(name="backups.tasks.start_run")
def start_run(run_id: int) -> None:
    """Claim a queued run, resolve its VMs and send the first of them to the workers."""
    runs.start(run_id)


@shared_task(name="backups.tasks.backup_vm")
def backup_vm(vm_backup_id: int) -> str:
    """Back up one VM of a run, then send the next waiting VM (or finish the run)."""
    return vm_backups.run(vm_backup_id)


@shared_task(name="backups.tasks.restore")
def restore(restore_id: int) -> str:
    """Do one recorded restore."""
    return restores.run(restore_id)


@shared_task(name="backups.tasks.check_remote")
def check_remote(remote_id: int) -> str:
    """Write-test a remote and record its space."""
    remote = Remote.objects.filter(pk=remote_id).first()
    if remote is None:
        return "gone"
    return remotes.check(remote).message


@shared_task(name="backups.tasks.rebuild_restore_points")
def rebuild_restore_points(remote_id: int) -> str:
    """Re-read a remote's backups into the restore point index."""
    remote = Remote.objects.filter(pk=remote_id).first()
    if remote is None:
        return "gone"
    rebuilt = restore_points.rebuild(remote)
    return f"{rebuilt.indexed} restore point(s) indexed, {rebuilt.removed} removed"
