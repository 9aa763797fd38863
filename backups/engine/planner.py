"""Full or delta, disk by disk, and why (docs/backup-engine.md §3). Pure: facts in, plans out.

The facts come from the pool (the base snapshot of each disk, found by our tags: bases.py) and
from every remote (the base's VHD is there and opens: bases.py). The rules, in the order they
are tried for each disk:

1. the job makes full backups only → ``JOB_MODE_FULL``;
2. the schedule forces fulls → ``FORCED_BY_SCHEDULE``;
3. no base snapshot: ``BASE_SNAPSHOT_GONE`` if a remote holds an earlier backup of the disk by
   this job, ``NEW_DISK`` if other disks of the VM have a base, else ``FIRST_BACKUP``;
4. the disk's size changed since the base → ``DISK_RESIZED``;
5. XO's key interval: ``full_interval != 0 and full_interval <= chain + 1``, with ``chain`` the
   longest chain of the base group (every disk at once, as XO) → ``FULL_INTERVAL``;
6. the disk's own chain already holds ``max_chain_length`` deltas → ``CHAIN_LIMIT``;
7. on *any* remote: a newer backup of the disk than the base (its snapshot was never marked
   exported) → ``BASE_SNAPSHOT_GONE``, as a delta on the older base would fork the chain; the
   base VHD missing, failing to open or failing its last verification →
   ``BASE_BACKUP_MISSING`` / ``BASE_BACKUP_INVALID`` / ``BASE_UNVERIFIED``: a full to every
   remote (XO's rule: one chain per disk for all remotes);
8. otherwise a delta on the base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class DiskMode(StrEnum):
    FULL = "full"
    DELTA = "delta"


class FullReason(StrEnum):
    FIRST_BACKUP = "first_backup"
    JOB_MODE_FULL = "job_mode_full"
    FORCED_BY_SCHEDULE = "forced_by_schedule"
    FULL_INTERVAL = "full_interval"
    CHAIN_LIMIT = "chain_limit"
    BASE_SNAPSHOT_GONE = "base_snapshot_gone"
    BASE_BACKUP_MISSING = "base_backup_missing"
    BASE_BACKUP_INVALID = "base_backup_invalid"
    NEW_DISK = "new_disk"
    DISK_RESIZED = "disk_resized"
    BASE_UNVERIFIED = "base_unverified"


class RemoteBaseStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    INVALID = "invalid"
    UNVERIFIED = "unverified"
    #: A newer backup of the disk is on the remote, but its snapshot is not a base on the pool:
    #: a delta on the older base would fork the chain.
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class BaseSnapshot:
    """The snapshot VDI a disk's next delta would be computed from."""

    vdi_ref: str
    vdi_uuid: str
    virtual_size: int
    chain_length: int  # deltas since the last full, as tagged (xoweb:backup:deltaChainLength)
    datetime: str  # the <ts> of the backup it belongs to


@dataclass(frozen=True)
class RemoteBase:
    """The base's VHD on one remote."""

    remote_id: str
    remote_name: str
    status: RemoteBaseStatus
    path: str = ""  # relpath of the base VHD (expected, when missing)
    detail: str = ""  # why it is invalid
    timestamp: int = 0  # the base file's VHD time stamp (for the child's parent link)


@dataclass(frozen=True)
class DiskFacts:
    vdi_uuid: str
    vdi_name: str
    virtual_size: int
    base: BaseSnapshot | None
    previously_backed_up: bool  # a remote holds a committed backup of this disk by this job
    remote_bases: tuple[RemoteBase, ...] = ()


@dataclass(frozen=True)
class DiskPlan:
    vdi_uuid: str
    mode: DiskMode
    reason_code: FullReason | None
    reason: str
    base: BaseSnapshot | None  # set for a delta only
    chain_length: int  # deltas since the last full once this backup is done
    remote_bases: tuple[RemoteBase, ...] = ()


def group_chain_length(disks: Sequence[DiskFacts]) -> int:
    """XO's chain length of a VM: the longest over the disks of the base group."""
    return max((disk.base.chain_length for disk in disks if disk.base), default=0)


def plan_disks(
    disks: Sequence[DiskFacts],
    *,
    job_name: str,
    job_mode: str,
    schedule_name: str,
    force_full: bool,
    full_interval: int,
    max_chain_length: int,
) -> list[DiskPlan]:
    """A plan per disk, in the order given (see the module docstring for the rules)."""
    any_base = any(disk.base for disk in disks)
    group_chain = group_chain_length(disks)
    return [
        _plan_one(
            disk,
            job_name=job_name,
            job_mode=job_mode,
            schedule_name=schedule_name,
            force_full=force_full,
            full_interval=full_interval,
            max_chain_length=max_chain_length,
            any_base=any_base,
            group_chain=group_chain,
        )
        for disk in disks
    ]


def _plan_one(
    disk: DiskFacts,
    *,
    job_name: str,
    job_mode: str,
    schedule_name: str,
    force_full: bool,
    full_interval: int,
    max_chain_length: int,
    any_base: bool,
    group_chain: int,
) -> DiskPlan:
    def full(code: FullReason, sentence: str) -> DiskPlan:
        return DiskPlan(disk.vdi_uuid, DiskMode.FULL, code, f"full: {sentence}", None, 0)

    if job_mode == "full":
        return full(FullReason.JOB_MODE_FULL, f"job '{job_name}' makes full backups only")
    if force_full:
        return full(
            FullReason.FORCED_BY_SCHEDULE, f"the schedule '{schedule_name}' forces full backups"
        )
    base = disk.base
    if base is None:
        if disk.previously_backed_up:
            return full(
                FullReason.BASE_SNAPSHOT_GONE,
                "the snapshot of the last backup of this disk is gone from the pool",
            )
        if any_base:
            return full(FullReason.NEW_DISK, "new disk, not in the previous backup")
        return full(FullReason.FIRST_BACKUP, f"first backup of this disk by job '{job_name}'")
    if base.virtual_size != disk.virtual_size:
        return full(
            FullReason.DISK_RESIZED,
            f"the disk was resized from {base.virtual_size} to {disk.virtual_size} bytes "
            f"since the backup {base.datetime}",
        )
    if full_interval and full_interval <= group_chain + 1:
        return full(
            FullReason.FULL_INTERVAL,
            f"job '{job_name}' makes a full every {full_interval} backups and the chain "
            f"holds {group_chain} deltas",
        )
    if max_chain_length and base.chain_length >= max_chain_length:
        return full(
            FullReason.CHAIN_LIMIT,
            f"the chain of this disk reached its limit of {max_chain_length} deltas",
        )
    for remote in disk.remote_bases:
        name = remote.path.rsplit("/", 1)[-1]
        if remote.status == RemoteBaseStatus.SUPERSEDED:
            return full(
                FullReason.BASE_SNAPSHOT_GONE,
                f"the snapshot of the last backup of this disk ({remote.detail}) is gone from "
                "the pool",
            )
        if remote.status == RemoteBaseStatus.MISSING:
            return full(
                FullReason.BASE_BACKUP_MISSING,
                f"base backup {name} is missing on remote '{remote.remote_name}'",
            )
        if remote.status == RemoteBaseStatus.INVALID:
            return full(
                FullReason.BASE_BACKUP_INVALID,
                f"base backup {name} on remote '{remote.remote_name}' fails its check: "
                f"{remote.detail}",
            )
        if remote.status == RemoteBaseStatus.UNVERIFIED:
            return full(
                FullReason.BASE_UNVERIFIED,
                f"base backup {name} on remote '{remote.remote_name}' failed its last "
                f"verification{': ' + remote.detail if remote.detail else ''}",
            )
    chain = base.chain_length + 1
    return DiskPlan(
        disk.vdi_uuid,
        DiskMode.DELTA,
        None,
        f"delta on {base.datetime} ({chain} delta{'s' if chain > 1 else ''} since the last full)",
        base,
        chain,
        disk.remote_bases,
    )
