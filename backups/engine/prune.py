"""Retention applied to one VM's backups on one remote (docs/maintenance.md §2).

For each schedule, its backups of the VM (same job and schedule ids) get a verdict from
``retention.decide``; a dropped backup loses its metadata only (``RemoteAdapter.delete_backup``,
flushed: a deleted backup never comes back after a power loss while its files are being merged
away). Its VHDs are then the clean pass's: merged into the kept backups that need them, or
deleted. The same decisions feed the dry runs (``backup_prune --dry-run``, the job page).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .retention import RetentionPolicy, decide
from .values import BackupEntry


@dataclass(frozen=True)
class ScheduleRetention:
    """The retention of one schedule of one job."""

    job_id: str
    schedule_id: str
    policy: RetentionPolicy
    schedule_name: str = ""


@dataclass(frozen=True)
class PruneDecision:
    """One backup and what retention does with it."""

    path: str  # its metadata, relative to the remote's root
    vm_uuid: str
    timestamp: str
    schedule_id: str
    keep: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "vm": self.vm_uuid,
            "timestamp": self.timestamp,
            "schedule": self.schedule_id,
            "keep": self.keep,
            "reason": self.reason,
        }


def decisions(
    entries: Iterable[BackupEntry], retention: Sequence[ScheduleRetention]
) -> list[PruneDecision]:
    """Verdicts for the backups of each schedule in ``retention`` (per VM), oldest first.

    Backups of other jobs or schedules are not looked at: each schedule prunes its own.
    """
    out: list[PruneDecision] = []
    for rule in retention:
        by_vm: dict[str, dict[str, BackupEntry]] = {}
        for entry in entries:
            if entry.job_id == rule.job_id and entry.schedule_id == rule.schedule_id:
                by_vm.setdefault(entry.vm_uuid, {})[entry.timestamp] = entry
        for vm_uuid, mine in sorted(by_vm.items()):
            for verdict in decide(list(mine), rule.policy):
                entry = mine[verdict.timestamp]
                out.append(
                    PruneDecision(
                        entry.path,
                        vm_uuid,
                        entry.timestamp,
                        rule.schedule_id,
                        verdict.keep,
                        verdict.reason,
                    )
                )
    return sorted(out, key=lambda decision: (decision.vm_uuid, decision.timestamp))
