"""Restore tests ("health checks"): a backup restored as a new VM, started, seen running and
destroyed, in a worker, once (docs/verification.md §3).

:func:`request` records one (a schedule's run, or a person); :func:`run` does it once (the
Celery task, or the run's checks): it refuses a backup that failed its last verification,
destroys what earlier tests left on the pool (a test whose process died: its objects carry its
mark and its row is no longer running), then asks the engine, whose outcome it stores.
"""

from __future__ import annotations

import logging

from django.db import transaction

from backups.choices import CheckStatus, CheckTrigger
from backups.models import HealthCheck, Remote
from backups.services import bridge, check_claims, verification
from backups.services.restores import RestoreRefused, live_sr
from pools.services import client_for
from tasks.reporter import TaskReporter, no_current_task, task

logger = logging.getLogger(__name__)


def request(
    remote: Remote,
    backup_path: str,
    *,
    vm_uuid: str,
    vm_name: str = "",
    timestamp: str = "",
    sr_uuid: str,
    timeout: int,
    trigger: str = CheckTrigger.PAGE,
    run=None,
    requested_by: str = "",
    queue: bool = True,
) -> HealthCheck:
    """Record a restore test; queued on the workers when the transaction commits (``queue``)."""
    from backups import tasks as celery_tasks

    check = HealthCheck.objects.create(
        run=run,
        trigger=trigger,
        remote=remote,
        backup_path=backup_path,
        vm_uuid=vm_uuid,
        vm_name=vm_name[:255],
        timestamp=timestamp,
        sr_uuid=sr_uuid.strip(),
        timeout=timeout,
        requested_by=requested_by[:150],
    )
    if queue:
        transaction.on_commit(lambda: celery_tasks.health_check.delay(check.pk))
    return check


def run(health_check_id: int) -> str:
    """Do a recorded restore test once; its final status."""
    check_claims.interrupt_dead(HealthCheck)
    check = check_claims.claim(HealthCheck, health_check_id)
    if check is None:
        return "not claimed"
    try:
        with (
            check_claims.beating(check),
            no_current_task(),
            task(_title(check), kind="health-check", about=check) as progress,
        ):
            HealthCheck.objects.filter(pk=check.pk).update(task_id=progress.id)
            _test(check, progress)
    except Exception as error:
        logger.exception("restore test %s failed", check.pk)
        check_claims.end(check, CheckStatus.ERROR, str(error) or type(error).__name__)
    check.refresh_from_db()
    return check.status


def _title(check: HealthCheck) -> str:
    return f"Restore test of {check.vm_name or check.vm_uuid} @ {check.timestamp}"


def _test(check: HealthCheck, progress: TaskReporter) -> None:
    """Steps: refuse a backup that failed verification; find the SR; clean leftovers; test."""
    remote = check.remote
    if remote is None:
        check_claims.end(check, CheckStatus.ERROR, "not tested: its remote was removed")
        return
    point = _point(check)
    why = verification.refusal(point) if point is not None else None
    if why is not None:
        progress.error(why)
        check_claims.end(check, CheckStatus.FAILED, f"not tested: {why}")
        return
    try:
        sr = live_sr(check.sr_uuid)
    except RestoreRefused as refused:
        check_claims.end(check, CheckStatus.ERROR, f"not tested: {refused}")
        return
    with client_for(sr.pool) as client:
        destroy_leftovers(client, progress)
        outcome = bridge.health_check(
            client,
            bridge.remote_adapter(remote),
            check.backup_path,
            sr.uuid,
            mark=check.mark,
            timeout=float(check.timeout),
            progress=progress,
            known_bad=verification.known_bad([remote]),
        )
    if outcome.ok:
        progress.info(f"passed: the restored VM ran after {outcome.boot_seconds:.1f} s")
    else:
        progress.error(outcome.error)
    check_claims.end(
        check,
        CheckStatus.PASSED if outcome.ok else CheckStatus.FAILED,
        outcome.error,
        restored_vm_uuid=outcome.vm_uuid,
        destroyed=outcome.destroyed,
        boot_seconds=outcome.boot_seconds,
    )


def _point(check: HealthCheck):
    from backups.models import RestorePoint

    return (
        RestorePoint.objects.select_related("remote")
        .filter(remote=check.remote, path=check.backup_path)
        .first()
    )


def destroy_leftovers(client, progress: TaskReporter) -> int:
    """Destroy what restore tests left on this pool: objects whose mark names a test that is
    not running any more (its process died, or the pool refused a destroy); how many went."""
    find, destroy = bridge.health_check_leftovers()
    running = {
        check.mark for check in HealthCheck.objects.filter(status=CheckStatus.RUNNING).only("pk")
    }
    gone = 0
    for leftover in find(client):
        if leftover.mark in running:
            continue
        left = destroy(client, leftover)
        if left:
            progress.warning(
                f"cannot destroy {leftover.kind} '{leftover.name}' left by a restore test: "
                + "; ".join(left)
            )
        else:
            gone += 1
            progress.info(
                f"destroyed {leftover.kind} '{leftover.name}' ({leftover.uuid}) left by an "
                f"earlier restore test ({leftover.mark})"
            )
    return gone
