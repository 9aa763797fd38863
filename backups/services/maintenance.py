"""Retention, merges and the clean pass, from the Django side (docs/maintenance.md).

The engine does the work (``backups.engine.maintenance``) under each VM folder's lock; this
module chooses what to run where, stores what each pass found (one ``CleanReport`` per VM
folder, replaced by the next pass), keeps the restore point index in step, and queues a merge
task when a backup left merges for later:

* :func:`after_backup` — the passes a VM backup ran (before and after it) → reports, index,
  a merge task if merges are left;
* :func:`clean` — passes over a remote's VM folders (``backup_clean``, the remote page, the
  merge task);
* :func:`prune` — every schedule's retention of a job, then the clean pass (``backup_prune``);
* :func:`preview` — the retention dry run read from the restore point index (the job page:
  no remote is touched by the web process).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.models import BackupJob, CleanReport, Remote, RestorePoint, VmBackup
from backups.services import bridge, restore_points
from tasks.reporter import TaskReporter

logger = logging.getLogger(__name__)


def merge_batch_bytes() -> int:
    return settings.BACKUP_MERGE_BATCH_MIB * 2**20


def lock_options() -> dict[str, float]:
    return {
        "lock_lease": float(settings.BACKUP_LOCK_LEASE_SECONDS),
        "lock_heartbeat": float(settings.BACKUP_LOCK_HEARTBEAT_SECONDS),
    }


# -- reports ---------------------------------------------------------------------------------------


def record(
    remote: Remote, reports: list[Any], *, trigger: str, task: TaskReporter | None = None
) -> CleanReport | None:
    """Store the passes of one VM folder (one pass, or a backup's two) as its clean report.

    A dry run is not stored: it changed nothing, and the report says what the folder looks
    like after the last real pass.
    """
    real = [report for report in reports if not report.dry_run]
    if not real:
        return None
    last = real[-1]
    findings = [finding.as_dict() for report in real for finding in report.findings]
    dropped = [
        {"path": d.path, "timestamp": d.timestamp, "reason": d.reason}
        for report in real
        for d in report.dropped
    ]
    row, _created = CleanReport.objects.update_or_create(
        remote=remote,
        vm_uuid=last.vm_uuid,
        defaults={
            "checked_at": timezone.now(),
            "trigger": trigger[:40],
            "findings": findings,
            "dropped": dropped,
            "merges_done": sum(report.merges_done for report in real),
            "merges_left": last.merges_left,
            "skipped": last.skipped,
            "task_id": getattr(task, "id", None),
        },
    )
    return row


def after_backup(vm_backup: VmBackup, outcome: Any, remotes: dict[str, Remote]) -> list[str]:
    """Store the passes of a VM backup per remote; queue a merge task where merges are left.

    Returns the names of the remotes a merge task was queued for.
    """
    queued = []
    for remote_id, reports in (getattr(outcome, "maintenance", None) or {}).items():
        remote = remotes.get(remote_id)
        if remote is None:
            continue
        record(remote, reports, trigger=f"backup run {vm_backup.run_id}")
        if reports and reports[-1].merges_left:
            queue_merge(remote, vm_backup.vm_uuid)
            queued.append(remote.name)
    return queued


def queue_merge(remote: Remote, vm_uuid: str) -> None:
    """The merges a backup left: a task on the backups queue, once this transaction commits."""
    from backups import tasks as celery_tasks

    transaction.on_commit(lambda: celery_tasks.merge_vm.delay(remote.pk, vm_uuid))


# -- passes over a remote ---------------------------------------------------------------------------


@dataclass
class PassResult:
    remote: Remote
    reports: list[Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote.name,
            "vms": [report.as_dict() for report in self.reports],
        }


def vm_folders(remote: Remote, vm_uuids: list[str] | None = None) -> list[str]:
    if vm_uuids:
        return list(vm_uuids)
    return bridge.remote_adapter(remote).list_vms()


def clean(
    remote: Remote,
    *,
    vm_uuids: list[str] | None = None,
    dry_run: bool = False,
    merges: int | None = None,
    trigger: str = "command",
    progress: TaskReporter | None = None,
    retention_of: dict[str, list[Any]] | None = None,
) -> PassResult:
    """One pass over each VM folder of ``remote`` (or those given), each under its lock.

    ``merges``: per VM folder (None: all). ``retention_of``: VM uuid → the retention rules to
    apply there first (``prune``). Steps: run the pass; store its report; re-read the VM's
    restore points if anything changed.
    """
    adapter = bridge.remote_adapter(remote)
    reports = []
    for vm_uuid in vm_folders(remote, vm_uuids):
        report = bridge.maintain_vm(
            adapter,
            vm_uuid,
            retention=(retention_of or {}).get(vm_uuid, ()),
            merges=merges,
            dry_run=dry_run,
            holder=f"{trigger} ({'dry run' if dry_run else 'clean pass'})",
            progress=progress,
            batch_bytes=merge_batch_bytes(),
            **lock_options(),
        )
        reports.append(report)
        if not dry_run:
            record(remote, [report], trigger=trigger, task=progress)
            if report.changed:
                restore_points.rebuild(remote, vm_uuid=vm_uuid)
    return PassResult(remote, reports)


def prune(
    job: BackupJob,
    *,
    remotes: list[Remote] | None = None,
    vm_uuids: list[str] | None = None,
    dry_run: bool = False,
    merges: int | None = None,
    trigger: str = "command",
    progress: TaskReporter | None = None,
) -> list[PassResult]:
    """Every schedule's retention of ``job`` on its remotes, then the clean pass there.

    The VM folders visited are those holding a backup of the job (or ``vm_uuids``).
    """
    rules = [bridge.retention_rule(job, schedule) for schedule in job.schedules.all()]
    results = []
    for remote in remotes if remotes is not None else job.remotes.filter(enabled=True):
        adapter = bridge.remote_adapter(remote)
        folders = sorted(
            {entry.vm_uuid for entry in adapter.list_backups() if entry.job_id == str(job.uuid)}
        )
        if vm_uuids:
            folders = [vm for vm in folders if vm in vm_uuids]
        results.append(
            clean(
                remote,
                vm_uuids=folders,
                dry_run=dry_run,
                merges=merges,
                trigger=trigger,
                progress=progress,
                retention_of={vm: rules for vm in folders},
            )
        )
    return results


def run_task(
    remote: Remote,
    *,
    vm_uuids: list[str] | None = None,
    dry_run: bool = False,
    merges: int | None = None,
    trigger: str,
) -> str:
    """A clean pass as a task of its own (the Celery tasks): progress, findings in its log,
    and a one-line summary as its result."""
    from tasks.reporter import task

    what = "Dry run of the clean pass" if dry_run else "Clean pass"
    scope = f" of VM {vm_uuids[0]}" if vm_uuids and len(vm_uuids) == 1 else ""
    with task(f"{what}{scope} on remote {remote.name}", kind="clean", about=remote) as progress:
        result = clean(
            remote,
            vm_uuids=vm_uuids,
            dry_run=dry_run,
            merges=merges,
            trigger=trigger,
            progress=progress,
        )
        summary = summarize(result)
        progress.info(summary)
        return summary


def run_prune_task(job: BackupJob, *, merges: int | None = None) -> str:
    """Retention of a job now, as a task of its own (the Celery task)."""
    from tasks.reporter import task

    with task(f"Retention of job {job.name}", kind="clean", about=job) as progress:
        results = prune(job, merges=merges, trigger="retention task", progress=progress)
        dropped = sum(len(report.dropped) for result in results for report in result.reports)
        summary = f"{dropped} backup(s) dropped; " + "; ".join(
            summarize(result) for result in results
        )
        progress.info(summary)
        return summary


def summarize(result: PassResult) -> str:
    reports = result.reports
    findings = [f for report in reports for f in report.findings]
    skipped = [report for report in reports if report.skipped]
    parts = [
        f"{len(reports)} VM folder(s) on {result.remote.name}",
        f"{len(findings)} finding(s)",
        f"{sum(r.merges_done for r in reports)} merge(s) done",
    ]
    left = sum(r.merges_left for r in reports)
    if left:
        parts.append(f"{left} merge(s) left")
    if skipped:
        parts.append(f"{len(skipped)} skipped (locked)")
    return ", ".join(parts)


# -- the job page's dry run --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Point:
    """What retention needs of a restore point (the index row, as an engine entry)."""

    path: str
    vm_uuid: str
    timestamp: str
    job_id: str
    schedule_id: str


def preview(job: BackupJob) -> list[dict[str, Any]]:
    """What each schedule's retention would drop now, and why, read from the restore point
    index (no remote is read): ``[{"schedule", "policy", "remotes": [{"remote", "kept",
    "drop": [{"vm", "vm_name", "timestamp", "reason"}]}]}]``."""
    points = list(
        RestorePoint.objects.filter(job_uuid=str(job.uuid))
        .select_related("remote")
        .order_by("remote__name", "vm_uuid", "taken_at")
    )
    names = {point.vm_uuid: point.vm_name for point in points}
    by_remote: dict[Remote, list[_Point]] = defaultdict(list)
    for point in points:
        by_remote[point.remote].append(
            _Point(point.path, point.vm_uuid, point.timestamp, point.job_uuid, point.schedule_uuid)
        )
    out = []
    for schedule in job.schedules.all():
        rule = bridge.retention_rule(job, schedule)
        remotes = []
        for remote, mine in by_remote.items():
            decisions = bridge.prune_decisions(mine, [rule])
            if not decisions:
                continue
            remotes.append(
                {
                    "remote": remote.name,
                    "kept": sum(1 for d in decisions if d.keep),
                    "drop": [
                        {
                            "vm": d.vm_uuid,
                            "vm_name": names.get(d.vm_uuid, ""),
                            "timestamp": d.timestamp,
                            "reason": d.reason,
                        }
                        for d in decisions
                        if not d.keep
                    ],
                }
            )
        out.append(
            {
                "schedule": schedule.name,
                "policy": rule.policy.describe(),
                "remotes": remotes,
            }
        )
    return out
