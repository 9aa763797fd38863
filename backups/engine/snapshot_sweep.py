"""The snapshot janitor of a whole pool: our snapshots nobody's run will clean
(docs/backup-engine.md §5, docs/maintenance.md §5).

A VM backup cleans the snapshots of its own job and VM (``janitor.py``). Some are never met
again that way: the VM left the job, the job was deleted, a schedule stopped, a run died and
the VM is not backed up any more. The sweep looks at every snapshot VM and snapshot VDI of the
pool carrying our keys (only those: another tool's snapshots, or a person's, are never looked
at), groups them by job, VM and backup time as the janitor does, and for each job and VM that no
live backup is working on:

* a group never marked ``exported`` (a run that died, or its ``pending`` mark) is destroyed once
  it is older than ``min_age`` — a backup starting while the sweep runs has not yet said it is
  live, and its snapshot is minutes old;
* beyond the newest exported group (the next delta's base, which stays), exported groups beyond
  each schedule's snapshot retention are destroyed; a job xoweb no longer knows keeps only its
  newest exported group;
* a checkpoint's suspend VDI goes with it (``snapshots.destroy_snapshot``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from pools.xapi import NULL_REF, XapiClient

from . import tags
from .janitor import SnapshotGroup, destroy_group, retention_victims
from .layout import parse_timestamp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepJob:
    """What the sweep needs of a job."""

    id: str
    name: str
    mode: str
    snapshot_retention_by_schedule: Mapping[str, int] = field(default_factory=dict)


@dataclass
class SweepAction:
    job_id: str
    vm_uuid: str
    what: str  # the group, described
    why: str
    action: str  # "destroyed", "would be destroyed", "could not be destroyed yet", "kept"

    def as_dict(self) -> dict[str, str]:
        return self.__dict__.copy()


def _age(group: SnapshotGroup, now: float) -> float:
    if group.timestamp:
        return now - parse_timestamp(group.timestamp).timestamp()
    moments = [record.get("snapshot_time") for record in [group.vm_record, *group.vdis.values()]]
    for moment in moments:
        value = getattr(moment, "value", moment)
        if isinstance(value, str) and len(value) >= 17:
            try:
                stamp = value.replace("-", "").replace(":", "")[:15] + "Z"
                return now - parse_timestamp(stamp).timestamp()
            except ValueError:
                continue
    return float("inf")  # unknown: a leftover of a run long gone


def find_our_snapshots(client: XapiClient) -> dict[tuple[str, str], list[SnapshotGroup]]:
    """Our snapshot groups on the pool by (job id, source VM uuid), oldest first.

    Steps: every snapshot VM with our keys, with the disks of its Disk VBDs; every snapshot
    VDI with our keys that no such VM holds; grouped by backup time (a ``pending`` snapshot,
    never tagged, is a group of its own).
    """
    vms = client.get_all_records("VM")
    vbds = client.get_all_records("VBD")
    vdis = client.get_all_records("VDI")
    groups: dict[tuple[str, str, str], SnapshotGroup] = {}
    held: set[str] = set()

    def owner(other: Mapping[str, str]) -> tuple[str, str]:
        return other.get(tags.JOB) or other.get(tags.PENDING, ""), other.get(tags.VM, "")

    for ref, record in vms.items():
        other = record.get("other_config", {})
        if not record.get("is_a_snapshot") or not tags.has_ours(other):
            continue
        job_id, vm_uuid = owner(other)
        if not vm_uuid:
            source = vms.get(record.get("snapshot_of", NULL_REF), {})
            vm_uuid = source.get("uuid", "")
        group = SnapshotGroup(
            tags.backup_timestamp(other), other.get(tags.SCHEDULE, ""), ref, record
        )
        for vbd_ref in record.get("VBDs", []):
            vbd = vbds.get(vbd_ref, {})
            vdi_ref = vbd.get("VDI", NULL_REF)
            if vbd.get("type") == "Disk" and vdi_ref in vdis:
                group.vdis[vdi_ref] = vdis[vdi_ref]
                held.add(vdi_ref)
        groups[(job_id, vm_uuid, f"vm:{ref}")] = group
    for ref, record in vdis.items():
        other = record.get("other_config", {})
        if (
            ref in held
            or not record.get("is_a_snapshot")
            or not record.get("managed", True)
            or not tags.has_ours(other)
        ):
            continue
        job_id, vm_uuid = owner(other)
        stamp = tags.backup_timestamp(other)
        key = (job_id, vm_uuid, stamp if stamp and tags.JOB in other else f"vdi:{ref}")
        group = groups.setdefault(key, SnapshotGroup(stamp, other.get(tags.SCHEDULE, "")))
        group.vdis[ref] = record
    out: dict[tuple[str, str], list[SnapshotGroup]] = {}
    for (job_id, vm_uuid, _key), group in groups.items():
        out.setdefault((job_id, vm_uuid), []).append(group)
    for found in out.values():
        found.sort(key=lambda group: group.timestamp)
    return out


def sweep_pool(
    client: XapiClient,
    jobs: Mapping[str, SweepJob],
    *,
    busy: Collection[tuple[str, str]] = (),
    now: float,
    min_age: float = 3600.0,
    dry_run: bool = False,
    report: Callable[[str], None] = lambda message: None,
) -> list[SweepAction]:
    """Destroy our snapshots no run will clean (see the module doc); what was done to each.

    ``busy``: (job id, VM uuid) pairs a live backup is working on: left alone.
    """
    actions: list[SweepAction] = []
    for (job_id, vm_uuid), groups in sorted(find_our_snapshots(client).items()):
        if (job_id, vm_uuid) in busy:
            continue
        job = jobs.get(job_id)
        leftovers = [
            group for group in groups if not group.exported and _age(group, now) >= min_age
        ]
        if job is not None:
            mode, retention = job.mode, dict(job.snapshot_retention_by_schedule)
        else:
            mode = "delta"
            retention = {group.schedule_id: 0 for group in groups}
        victims = retention_victims(groups, job_mode=mode, retention_by_schedule=retention)
        for group, why in [
            *((group, "left by a run that did not finish") for group in leftovers),
            *(
                (
                    group,
                    "beyond its schedule's snapshot retention"
                    if job is not None
                    else "of a job xoweb no longer has (its newest is kept)",
                )
                for group in victims
            ),
        ]:
            action = "would be destroyed"
            if not dry_run:
                left = destroy_group(client, group)
                action = "could not be destroyed yet" if left else "destroyed"
            actions.append(SweepAction(job_id, vm_uuid, group.describe(), why, action))
            report(f"{group.describe()} of VM {vm_uuid} ({why}): {action}")
    return actions
