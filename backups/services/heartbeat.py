"""Who works on a VM backup, and whether that process is still alive.

While a process backs a VM up, the process's heartbeat (:mod:`tasks.heartbeat`, the one that
beats for its task rows too) rewrites the ``heartbeat`` column of the VM backup and of its run,
and the ``updated`` column of the run's task (which no process holds open between VMs), every
``TASK_HEARTBEAT_SECONDS``, each only while the row still has the status (and, for the VM
backup, the try) it had: a row someone else ended or handed to another try is never revived.

A holder is dead when it is a process of this host (``XOWEB_HOST_NAME``) that no longer exists,
or, wherever it ran, when its heartbeat is older than ``BACKUP_HEARTBEAT_TIMEOUT``: the sweep
(:mod:`backups.services.sweep`) and a redelivered message (:mod:`backups.services.vm_backups`)
both decide with :func:`holder_is_dead` and :func:`is_silent`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import BackupRun, VmBackup
from tasks.choices import TaskStatus
from tasks.heartbeat import heartbeat
from tasks.models import Task


def holder_name() -> str:
    """Who is working, as ``host:pid`` (stored in ``VmBackup.worker``)."""
    return f"{settings.HOST_NAME}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` (host:pid) is a process of this host that no longer exists.

    Only a process of this host can be proven dead at once; elsewhere the heartbeat decides.
    """
    host, _, pid = holder.rpartition(":")
    if host != settings.HOST_NAME or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


def silence_cutoff(now: datetime | None = None) -> datetime:
    """Heartbeats older than this belong to dead processes."""
    return (now or timezone.now()) - timedelta(seconds=settings.BACKUP_HEARTBEAT_TIMEOUT)


def is_silent(vm_backup: VmBackup, now: datetime | None = None) -> bool:
    """No beat from its holder within ``BACKUP_HEARTBEAT_TIMEOUT``."""
    last = vm_backup.heartbeat or vm_backup.started
    return last is None or last < silence_cutoff(now)


def why_dead(vm_backup: VmBackup, now: datetime | None = None) -> str:
    """Why the holder of a running VM backup is dead, or "" when it may be alive."""
    if holder_is_dead(vm_backup.worker):
        return f"the worker process backing it up ({vm_backup.worker}) died"
    if is_silent(vm_backup, now):
        return (
            f"its worker ({vm_backup.worker or 'unknown'}) sent no heartbeat for "
            f"{settings.BACKUP_HEARTBEAT_TIMEOUT} s (killed, or its host stopped)"
        )
    return ""


@contextmanager
def beating(vm_backup: VmBackup) -> Iterator[None]:
    """Beat for ``vm_backup`` (this try), its run and the run's task until the block ends."""
    with ExitStack() as stack:
        stack.enter_context(
            heartbeat.holding(
                VmBackup,
                vm_backup.pk,
                field="heartbeat",
                status=VmBackupStatus.RUNNING,
                attempt=vm_backup.attempt,
            )
        )
        stack.enter_context(
            heartbeat.holding(
                BackupRun, vm_backup.run_id, field="heartbeat", status=RunStatus.RUNNING
            )
        )
        if vm_backup.run.task_id:
            stack.enter_context(
                heartbeat.holding(
                    Task, vm_backup.run.task_id, field="updated", status=TaskStatus.RUNNING
                )
            )
        yield
