"""What a schedule proves after each of its runs: verification and restore tests
(docs/verification.md §4).

When a run of a schedule that asks for them ends (:func:`run_ended`, called once by whoever
ends the run), its checks are recorded in one transaction — a verification per remote the run
wrote to, covering the VMs it backed up there; a restore test per VM with a new backup — and
one backup task (:func:`check`) does them in order: the verifications first, so that a restore
test never boots a backup that has just failed its verification. Each row is claimed once, so a
redelivered task finishes what is left and repeats nothing.
"""

from __future__ import annotations

import logging

from django.db import transaction

from backups.choices import CheckStatus, CheckTrigger, VerifyLevel
from backups.models import BackupRun, HealthCheck, Remote, Verification
from backups.services import health_checks, verification

logger = logging.getLogger(__name__)


def run_ended(run_id: int) -> int:
    """Record the checks the run's schedule asks for and queue them; how many were recorded."""
    from backups import tasks as celery_tasks

    run = BackupRun.objects.select_related("schedule").filter(pk=run_id).first()
    schedule = run.schedule if run is not None else None
    if schedule is None or not (schedule.verify or schedule.health_check):
        return 0
    committed = [
        vm_backup
        for vm_backup in run.vm_backups.order_by("vm_name", "pk")
        if vm_backup.metadata  # {remote uuid: path}: what reached the remotes
    ]
    remotes = {str(remote.uuid): remote for remote in Remote.objects.filter(uuid__in=run.remotes)}
    count = 0
    with transaction.atomic():
        if schedule.verify != VerifyLevel.NONE:
            for remote_id, remote in sorted(remotes.items(), key=lambda item: item[1].name):
                vms = [vm.vm_uuid for vm in committed if remote_id in vm.metadata]
                if vms:
                    verification.request(
                        remote,
                        deep=schedule.verify == VerifyLevel.DEEP,
                        vm_uuids=vms,
                        trigger=CheckTrigger.SCHEDULE,
                        run=run,
                        requested_by=f"schedule {schedule}",
                        queue=False,
                    )
                    count += 1
        if schedule.health_check:
            for vm_backup in committed:
                holding = [remotes[rid] for rid in vm_backup.metadata if rid in remotes]
                if not holding:
                    continue
                remote = min(holding, key=lambda remote: remote.name)
                health_checks.request(
                    remote,
                    vm_backup.metadata[str(remote.uuid)],
                    vm_uuid=vm_backup.vm_uuid,
                    vm_name=vm_backup.vm_name,
                    timestamp=vm_backup.timestamp,
                    sr_uuid=schedule.health_check_sr,
                    timeout=schedule.health_check_timeout,
                    trigger=CheckTrigger.SCHEDULE,
                    run=run,
                    requested_by=f"schedule {schedule}",
                    queue=False,
                )
                count += 1
        if count:
            transaction.on_commit(lambda: celery_tasks.check_run.delay(run_id))
    return count


def check(run_id: int) -> dict[str, list[str]]:
    """Do the run's pending checks (the ``check_run`` task): verifications, then restore tests;
    the final status of each."""
    done: dict[str, list[str]] = {"verifications": [], "health_checks": []}
    for pk in Verification.objects.filter(run_id=run_id, status=CheckStatus.PENDING).values_list(
        "pk", flat=True
    ):
        done["verifications"].append(verification.run(pk))
    for pk in HealthCheck.objects.filter(run_id=run_id, status=CheckStatus.PENDING).values_list(
        "pk", flat=True
    ):
        done["health_checks"].append(health_checks.run(pk))
    return done
