"""The snapshot janitor of the pools, from the Django side (docs/maintenance.md §5).

For each live pool: log in, and let the engine sweep our snapshots that no run will clean
(``backups.engine.snapshot_sweep``), leaving alone the VMs a live backup is working on (a
running VM backup whose heartbeat is fresh). Run hourly by beat, by ``manage.py
snapshot_janitor`` and from a pool's page.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from backups.choices import VmBackupStatus
from backups.models import BackupJob, VmBackup
from pools.models import Pool
from pools.services import client_for
from tasks.reporter import TaskReporter


def sweep_jobs() -> dict[str, Any]:
    from backups.engine.snapshot_sweep import SweepJob

    return {
        str(job.uuid): SweepJob(
            id=str(job.uuid),
            name=job.name,
            mode=job.mode,
            snapshot_retention_by_schedule={
                str(schedule.uuid): schedule.snapshot_retention for schedule in job.schedules.all()
            },
        )
        for job in BackupJob.objects.prefetch_related("schedules")
    }


def busy_pairs() -> set[tuple[str, str]]:
    """(job uuid, VM uuid) of the VM backups a live process is working on."""
    fresh = timezone.now() - timedelta(seconds=settings.BACKUP_HEARTBEAT_TIMEOUT)
    running = VmBackup.objects.filter(status=VmBackupStatus.RUNNING, heartbeat__gte=fresh)
    queued = VmBackup.objects.filter(status=VmBackupStatus.QUEUED)  # about to start
    return {
        (str(job), vm)
        for rows in (running, queued)
        for job, vm in rows.values_list("run__job__uuid", "vm_uuid")
    }


def sweep(pool: Pool, *, dry_run: bool = False, progress: TaskReporter | None = None) -> list[Any]:
    """Sweep one pool; the actions taken (or, dry, that would be)."""
    from backups.engine.snapshot_sweep import sweep_pool

    with client_for(pool) as client:
        return sweep_pool(
            client,
            sweep_jobs(),
            busy=busy_pairs(),
            now=time.time(),
            min_age=float(settings.BACKUP_SNAPSHOT_JANITOR_AGE_SECONDS),
            dry_run=dry_run,
            report=progress.info if progress is not None else (lambda message: None),
        )


def sweep_all(*, dry_run: bool = False) -> dict[str, list[Any] | str]:
    """Every live pool, each in a task; a pool that fails says why instead."""
    from tasks.reporter import task

    results: dict[str, list[Any] | str] = {}
    for pool in Pool.objects.live():
        what = "Dry run of the snapshot janitor" if dry_run else "Snapshot janitor"
        try:
            with task(f"{what} on pool {pool.name}", kind="snapshot-retention", about=pool) as step:
                results[pool.name] = sweep(pool, dry_run=dry_run, progress=step)
        except Exception as error:
            results[pool.name] = str(error) or type(error).__name__
    return results
