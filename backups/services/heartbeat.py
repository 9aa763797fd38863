"""The heartbeat of a VM backup: while a process backs a VM up, a daemon thread rewrites the
``heartbeat`` of the VM backup and of its run, and touches the run's task (which no process
holds open), every ``BACKUP_HEARTBEAT_SECONDS``. When the process dies the beats stop, and the
next claim of the job or of the VM (:mod:`backups.services.runs`) notices it."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import BackupRun, VmBackup
from tasks.reporter import touch

logger = logging.getLogger(__name__)


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


def beat(vm_backup_id: int, run_id: int, run_task_id: int | None) -> None:
    now = timezone.now()
    VmBackup.objects.filter(pk=vm_backup_id, status=VmBackupStatus.RUNNING).update(heartbeat=now)
    BackupRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat=now)
    if run_task_id:
        touch([run_task_id])


@contextmanager
def beating(vm_backup: VmBackup) -> Iterator[None]:
    """Beat for ``vm_backup`` (and its run) until the block ends."""
    stop = threading.Event()
    run_task_id = vm_backup.run.task_id

    def run() -> None:
        while not stop.wait(settings.BACKUP_HEARTBEAT_SECONDS):
            try:
                close_old_connections()
                beat(vm_backup.pk, vm_backup.run_id, run_task_id)
            except Exception:
                logger.exception("heartbeat of VM backup %s failed", vm_backup.pk)
            finally:
                connection.close()

    thread = threading.Thread(target=run, name=f"xoweb-backup-beat-{vm_backup.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
