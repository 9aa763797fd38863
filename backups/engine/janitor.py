"""Our snapshots on the pool: finding them, removing leftovers, snapshot retention
(docs/backup-engine.md §5).

A *group* is one backup's snapshots: the snapshot VM (when there is one) and its snapshot VDIs,
or the per-disk snapshot VDIs of a halted VM, all tagged with the same ``datetime``. Only objects
that carry our tags for this job and this VM (or the ``pending`` mark of this job) are ever
looked at; another tool's snapshots, or another job's, are never touched.

* **janitor** (before each backup, under the VM's locks on every remote of the job, so no live
  run of this job on this VM can own them): destroy the groups never marked ``exported`` —
  a run that died or failed left them — and strip our keys from the live VM and its disks
  (a ``pending`` mark a killed run left there).
* **snapshot retention** (after a backup is committed): keep the newest exported group of the
  job (the next delta's base, delta jobs only) and, beyond it, the newest ``snapshot_retention``
  groups of each schedule; destroy the other exported groups.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pools.xapi import NULL_REF, XapiClient, XapiError, XapiFailure

from . import tags
from .snapshots import destroy_snapshot
from .vm_disks import VmDisk

logger = logging.getLogger(__name__)


@dataclass
class SnapshotGroup:
    timestamp: str  # the backup's <ts> ("" for a pending snapshot, never tagged)
    schedule_id: str = ""
    vm_ref: str = ""
    vm_record: dict[str, Any] = field(default_factory=dict)
    vdis: dict[str, dict[str, Any]] = field(default_factory=dict)  # ref → record

    @property
    def exported(self) -> bool:
        marks = [record.get("other_config", {}) for record in self.vdis.values()]
        if self.vm_ref:
            marks.append(self.vm_record.get("other_config", {}))
        return bool(marks) and all(tags.is_exported(mark) for mark in marks)

    def describe(self) -> str:
        what = f"snapshot VM '{self.vm_record.get('name_label', '')}'" if self.vm_ref else ""
        disks = f"{len(self.vdis)} snapshot disk{'s' if len(self.vdis) != 1 else ''}"
        when = self.timestamp or "an interrupted run"
        return f"{what + ' with ' if what else ''}{disks} of {when}"


def _safe_record(client: XapiClient, cls: str, ref: str) -> dict[str, Any] | None:
    try:
        return client.call(f"{cls}.get_record", ref)
    except XapiFailure as error:
        if error.code == "HANDLE_INVALID":
            return None  # destroyed meanwhile
        raise


def find_groups(
    client: XapiClient, vm: dict[str, Any], disks: Sequence[VmDisk], *, job_id: str, vm_uuid: str
) -> list[SnapshotGroup]:
    """Our groups of this job for this VM, oldest first (pending ones first of all).

    Steps: the VM's snapshots tagged ours, with the disks of their Disk VBDs; then each live
    disk's snapshot VDIs tagged ours that no such VM holds (per-disk snapshots, or disks a
    killed janitor separated from their VM), grouped by ``datetime``.
    """
    groups: dict[tuple[str, str], SnapshotGroup] = {}
    seen: set[str] = set()

    def ours(record: dict[str, Any]) -> bool:
        return tags.is_ours(record.get("other_config", {}), job_id=job_id, vm_uuid=vm_uuid)

    def key(record: dict[str, Any], fallback: str) -> tuple[str, str]:
        other = record.get("other_config", {})
        stamp = tags.backup_timestamp(other)
        return (stamp, "") if stamp and tags.JOB in other else ("", fallback)

    for snap_ref in vm.get("snapshots", []):
        record = _safe_record(client, "VM", snap_ref)
        if record is None or not ours(record):
            continue
        group = SnapshotGroup(
            tags.backup_timestamp(record.get("other_config", {})),
            record.get("other_config", {}).get(tags.SCHEDULE, ""),
            snap_ref,
            record,
        )
        for vbd_ref in record.get("VBDs", []):
            vbd = _safe_record(client, "VBD", vbd_ref)
            if vbd is None or vbd.get("type") != "Disk" or vbd.get("VDI") in ("", NULL_REF):
                continue
            vdi = _safe_record(client, "VDI", vbd["VDI"])
            if vdi is not None and vdi.get("is_a_snapshot"):
                group.vdis[vbd["VDI"]] = vdi
                seen.add(vbd["VDI"])
        groups[("vm", snap_ref)] = group
    for disk in disks:
        for vdi_ref in disk.vdi.get("snapshots", []):
            if vdi_ref in seen:
                continue
            record = _safe_record(client, "VDI", vdi_ref)
            if record is None or not ours(record) or not record.get("managed", True):
                continue
            seen.add(vdi_ref)
            stamp, pending = key(record, vdi_ref)
            group = groups.setdefault(
                (stamp, pending),
                SnapshotGroup(stamp, record.get("other_config", {}).get(tags.SCHEDULE, "")),
            )
            group.vdis[vdi_ref] = record
    return sorted(groups.values(), key=lambda group: group.timestamp)


def strip_live_marks(
    client: XapiClient, vm_ref: str, vm: dict[str, Any], disks: Sequence[VmDisk]
) -> int:
    """Remove our keys from the live VM and its disks (so no snapshot inherits them)."""
    removed = 0
    objects = [("VM", vm_ref, vm), *(("VDI", disk.vdi_ref, disk.vdi) for disk in disks)]
    for cls, ref, record in objects:
        for key in [k for k in record.get("other_config", {}) if k.startswith(tags.PREFIX)]:
            try:
                client.call(f"{cls}.remove_from_other_config", ref, key)
                removed += 1
            except XapiFailure as error:
                logger.warning("cannot remove %s from %s %s: %s", key, cls, ref, error)
    return removed


def destroy_group(client: XapiClient, group: SnapshotGroup) -> list[str]:
    return destroy_snapshot(client, group.vm_ref, list(group.vdis))


def clean_leftovers(
    client: XapiClient,
    groups: Sequence[SnapshotGroup],
    *,
    report: Callable[[str], None],
) -> list[SnapshotGroup]:
    """Destroy the groups never exported; return the groups still on the pool."""
    kept = []
    for group in groups:
        if group.exported:
            kept.append(group)
            continue
        left = destroy_group(client, group)
        if left:
            report(
                f"could not remove the leftover {group.describe()} yet; the next run tries again"
            )
        else:
            report(f"removed the leftover {group.describe()} (its run did not finish)")
    return kept


def retention_victims(
    groups: Sequence[SnapshotGroup],
    *,
    job_mode: str,
    retention_by_schedule: Mapping[str, int],
) -> list[SnapshotGroup]:
    """The exported groups snapshot retention removes (pure).

    Keeps the newest exported group (the next base) of a delta job and, for each schedule
    whose retention ``n`` is known, the newest ``n`` of its other groups (``n`` beyond the
    base); groups of schedules not in ``retention_by_schedule`` are left alone.
    """
    exported = sorted((g for g in groups if g.exported and g.timestamp), key=lambda g: g.timestamp)
    base = exported[-1] if exported and job_mode == "delta" else None
    by_schedule: dict[str, list[SnapshotGroup]] = {}
    for group in exported:
        if group is not base:
            by_schedule.setdefault(group.schedule_id, []).append(group)
    victims = []
    for schedule_id, members in by_schedule.items():
        if schedule_id not in retention_by_schedule:
            continue
        count = max(0, retention_by_schedule[schedule_id])
        victims.extend(members[: len(members) - count])
    return sorted(victims, key=lambda group: group.timestamp)


def apply_snapshot_retention(
    client: XapiClient,
    groups: Sequence[SnapshotGroup],
    *,
    job_mode: str,
    retention_by_schedule: Mapping[str, int],
    report: Callable[[str], None],
) -> int:
    """Destroy what ``retention_victims`` names; the number of groups removed."""
    removed = 0
    for group in retention_victims(
        groups, job_mode=job_mode, retention_by_schedule=retention_by_schedule
    ):
        try:
            left = destroy_group(client, group)
        except XapiError as error:
            report(f"could not remove the {group.describe()}: {error}")
            continue
        if left:
            report(f"could not remove the {group.describe()} yet; the next run tries again")
        else:
            removed += 1
    return removed
