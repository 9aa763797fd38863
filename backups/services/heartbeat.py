"""Who works on a VM backup, and whether that process is still alive.

While a process backs a VM up, the process's heartbeat (:mod:`tasks.heartbeat`, the one that
beats for its task rows too) rewrites the ``heartbeat`` column of the VM backup and of its run,
and the ``updated`` column of the run's task (which no process holds open between VMs), every
``TASK_HEARTBEAT_SECONDS``. When the process dies the beats stop: the next claim of the job
(:func:`backups.services.runs.interrupt_dead_runs`) or a redelivery of the VM's message
(:func:`backups.services.vm_backups.claim`) notices it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from backups.choices import RunStatus, VmBackupStatus
from backups.models import BackupRun, VmBackup
from tasks.choices import TaskStatus
from tasks.heartbeat import heartbeat
from tasks.models import Task


def holder_name() -> str:
    """Who is working, as ``host:pid`` (stored in ``VmBackup.worker``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_is_dead(holder: str) -> bool:
    """True when ``holder`` (host:pid) is a process of this host that no longer exists.

    Only a process of this host can be proven dead at once; elsewhere the heartbeat decides.
    """
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        return False
    return False


@contextmanager
def beating(vm_backup: VmBackup) -> Iterator[None]:
    """Beat for ``vm_backup``, its run and the run's task until the block ends (each only while
    it is still running: a row someone else ended is never revived)."""
    with ExitStack() as stack:
        stack.enter_context(
            heartbeat.holding(
                VmBackup, vm_backup.pk, field="heartbeat", status=VmBackupStatus.RUNNING
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
