"""The fan-out: waiting VM backups of a run are sent to the workers, one Celery task each, while
the job's concurrency and the pools' limit of exports leave room.

The slots of a run are its ``queued`` and ``running`` VM backups (at most ``job.concurrency``);
the slots of a pool are the ``queued`` and ``running`` VM backups of every running run on it
(at most ``BACKUP_MAX_EXPORTS_PER_POOL``: a VM backup exports its disks one after the other).
Each ``pending → queued`` claim is a conditional UPDATE made in a short transaction that holds
the run's row and the pool's row (``select_for_update``; SQLite serialises writers anyway) and
counts first: two processes dispatching at the same instant never exceed either limit.

Whoever frees a slot sends the next waiting VM: the end of a VM backup dispatches its own run,
then the other runs waiting on the same pool (oldest first); the sweep does it too, for a slot
freed by a process that died.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from backups import tasks as celery_tasks
from backups.choices import RunStatus, VmBackupStatus
from backups.models import BackupJob, BackupRun, VmBackup
from pools.models import Pool

logger = logging.getLogger(__name__)

ACTIVE = [VmBackupStatus.QUEUED, VmBackupStatus.RUNNING]


def pool_load(pool_ids) -> dict[int, int]:
    """Queued and running VM backups of running runs, per pool."""
    rows = (
        VmBackup.objects.filter(
            pool_id__in=list(pool_ids), status__in=ACTIVE, run__status=RunStatus.RUNNING
        )
        .values("pool_id")
        .annotate(n=Count("pk"))
        .values_list("pool_id", "n")
    )
    return dict(rows)


def dispatch(run_id: int) -> int:
    """Send waiting VM backups of a running run while it and their pools have free slots;
    returns how many were sent (see the module docstring)."""
    run = BackupRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.RUNNING or run.cancel_requested:
        return 0
    limit = settings.BACKUP_MAX_EXPORTS_PER_POOL
    sent = 0
    while True:
        with transaction.atomic():
            BackupRun.objects.select_for_update().filter(pk=run_id).values_list("pk").first()
            used = VmBackup.objects.filter(run_id=run_id, status__in=ACTIVE).count()
            if used >= run.job.concurrency:
                return sent
            waiting = list(
                VmBackup.objects.filter(run_id=run_id, status=VmBackupStatus.PENDING)
                .order_by("pk")
                .values_list("pk", "pool_id")
            )
            if not waiting:
                return sent
            chosen = _first_with_room(waiting, limit)
            if chosen is None:
                return sent  # every waiting VM's pool is at its limit: its end will send more
            now = timezone.now()
            claimed = VmBackup.objects.filter(pk=chosen, status=VmBackupStatus.PENDING).update(
                status=VmBackupStatus.QUEUED, queued_at=now
            )
            if claimed:
                BackupRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(heartbeat=now)
                transaction.on_commit(lambda pk=chosen: send(pk))
                sent += 1


def _first_with_room(waiting: list[tuple[int, int | None]], limit: int) -> int | None:
    """The first waiting VM backup whose pool has a free export slot (the pool's row locked,
    so that two runs never both take its last slot)."""
    if not limit:
        return waiting[0][0]
    pools = sorted({pool_id for _, pool_id in waiting if pool_id is not None})
    if pools:
        list(Pool.objects.select_for_update().filter(pk__in=pools).values_list("pk"))
    load = pool_load(pools)
    for pk, pool_id in waiting:
        if pool_id is None or load.get(pool_id, 0) < limit:
            return pk
    return None


def dispatch_pool(pool_id: int | None, *, besides: int | None = None) -> int:
    """Give the free slots of a pool to the runs waiting on it, oldest run first."""
    if pool_id is None:
        return 0
    waiting_runs = (
        BackupRun.objects.filter(
            status=RunStatus.RUNNING,
            vm_backups__pool_id=pool_id,
            vm_backups__status=VmBackupStatus.PENDING,
        )
        .exclude(pk=besides)
        .order_by("created", "pk")
        .values_list("pk", flat=True)
        .distinct()
    )
    sent = 0
    for run_id in list(waiting_runs):
        sent += dispatch(run_id)
    return sent


def time_limits(job: BackupJob) -> dict:
    """Celery's limits behind the job's per-VM timeout. The worker stops the backup itself at
    the timeout, as a cancel (``vm_backups``: the transfer stops, the snapshot and the partial
    files go); Celery's soft limit 30 s later and its hard limit (the process killed) a minute
    later are for a backup stuck in a call that never returns."""
    if not job.vm_timeout:
        return {}
    return {"soft_time_limit": job.vm_timeout + 30, "time_limit": job.vm_timeout + 60}


def shown_name(vm_backup: VmBackup) -> str:
    """What Flower and the workers' logs call the task (Celery's ``shadow`` name)."""
    name = vm_backup.vm_name or vm_backup.vm_uuid
    return f"backup VM {name} · job {vm_backup.run.job.name} · run {vm_backup.run_id}"


def send(vm_backup_id: int) -> None:
    """Send the Celery task of one queued VM backup (after the claim's commit)."""
    vm_backup = VmBackup.objects.select_related("run__job").get(pk=vm_backup_id)
    celery_tasks.backup_vm.apply_async(
        (vm_backup_id,), shadow=shown_name(vm_backup), **time_limits(vm_backup.run.job)
    )
