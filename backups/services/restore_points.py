"""The restore point index, rebuilt from what a remote holds (the remote is the truth).

Steps of a rebuild: list the remote's backups through the engine's adapter (one VM folder, or
all) and the chain of each of their VHDs (the files a restore reads); upsert one row per
metadata file; delete the rows of this remote (and VM) whose metadata file is gone. Runs after each VM backup, on request from the pages (in a worker), and in
``backup_list``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import transaction

from backups.models import Remote, RestorePoint
from backups.services import bridge

UPDATED_FIELDS = [
    "vm_uuid",
    "vm_name",
    "timestamp",
    "taken_at",
    "job_uuid",
    "schedule_uuid",
    "mode",
    "size",
    "disks",
]


@dataclass(frozen=True)
class Rebuilt:
    indexed: int
    removed: int


def _taken_at(entry) -> datetime:
    moment = getattr(entry, "datetime", None)
    if isinstance(moment, datetime):
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.strptime(entry.timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def _row(remote: Remote, entry, chains: dict[str, list[dict]]) -> RestorePoint:
    return RestorePoint(
        remote=remote,
        path=entry.path,
        vm_uuid=entry.vm_uuid,
        vm_name=(entry.vm_name or "")[:255],
        timestamp=entry.timestamp,
        taken_at=_taken_at(entry),
        job_uuid=entry.job_id or "",
        schedule_uuid=entry.schedule_id or "",
        mode=entry.mode or "",
        size=int(entry.size or 0),
        disks=[
            {
                "vdi": disk.vdi_uuid,
                "name": disk.vdi_name,
                "file": disk.path,
                "differencing": bool(disk.differencing),
                "size": int(disk.size or 0),
                "sha256": disk.sha256 or "",
                "snapshot": getattr(disk, "snapshot_vdi_uuid", ""),
                "mode": getattr(disk, "mode", ""),
                "reason": getattr(disk, "reason", ""),
                # [{"file", "differencing", "size"}], the full first.
                "chain": chains.get(disk.path, []),
            }
            for disk in entry.disks
        ],
    )


def rebuild(remote: Remote, *, vm_uuid: str | None = None) -> Rebuilt:
    """Make the index of ``remote`` (or of one VM on it) match the remote's metadata files."""
    adapter = bridge.remote_adapter(remote)
    entries = adapter.list_backups(vm_uuid)
    chains: dict[str, list[dict]] = {}
    for vm in sorted({entry.vm_uuid for entry in entries}):
        chains.update(bridge.disk_chains(adapter, vm))
    rows = [_row(remote, entry, chains) for entry in entries]
    scope = RestorePoint.objects.filter(remote=remote)
    if vm_uuid:
        scope = scope.filter(vm_uuid=vm_uuid)
    with transaction.atomic():
        RestorePoint.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["remote", "path"],
            update_fields=UPDATED_FIELDS,
            batch_size=500,
        )
        removed, _ = scope.exclude(path__in=[row.path for row in rows]).delete()
    return Rebuilt(len(rows), removed)


def rebuild_all(remotes=None) -> dict[str, Rebuilt | str]:
    """Rebuild every enabled remote's index; a remote that fails says why instead."""
    results: dict[str, Rebuilt | str] = {}
    for remote in remotes if remotes is not None else Remote.objects.filter(enabled=True):
        try:
            results[remote.name] = rebuild(remote)
        except Exception as error:
            results[remote.name] = str(error) or type(error).__name__
    return results
