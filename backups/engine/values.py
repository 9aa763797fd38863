"""The plain values that cross the line between the engine and the Django side.

Settings come in (``JobSettings``, ``ScheduleSettings``); outcomes go out (``VmBackupOutcome``
with a ``DiskOutcome`` per disk); ``BackupEntry`` is one backup as a remote holds it (the
restore point index is rebuilt from these). The contract is docs/backup-engine.md §2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .planner import DiskMode, FullReason
from .retention import RetentionPolicy

#: Comes in from the Django side: ``known_bad(remote_id, path)`` says whether verification found
#: the file at ``path`` (relative to that remote's root) bad, so that no delta and no restore
#: builds on it.
KnownBad = Callable[[str, str], bool]


@dataclass(frozen=True)
class JobSettings:
    """A backup job, as the engine needs it."""

    id: str  # XO's jobId, the vdis/<job id>/ folder and our job tag
    name: str
    mode: str  # "delta" | "full" (full = every disk a full VHD; XO's delta layout all the same)
    full_interval: int = 0  # XO's rule: a full when interval != 0 and interval <= chain + 1
    max_chain_length: int = 0  # deltas allowed after a full; 0 = no limit
    concurrency: int = 2  # used by the Django side
    vm_timeout: float = 0  # seconds, 0 = none (used by the Django side)
    #: Snapshot retention of every schedule of the job, so that snapshots left by a schedule
    #: that has not run since are pruned too (XO leaves them: vatesfr/xen-orchestra#8033).
    snapshot_retention_by_schedule: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in ("delta", "full"):
            raise ValueError(f"job mode {self.mode!r} must be 'delta' or 'full'")
        for name in ("full_interval", "max_chain_length"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, not {getattr(self, name)}")


@dataclass(frozen=True)
class ScheduleSettings:
    """One schedule of the job (the one this run belongs to)."""

    id: str  # XO's scheduleId, our schedule tag
    name: str
    force_full: bool = False
    retention: int = 7  # the newest backups of this schedule kept on each remote (0: all)
    snapshot_retention: int = 0  # our snapshots of this schedule kept on the pool, beyond the base
    # Long-term buckets (docs/maintenance.md §2): one backup per day, ISO week, month, year for
    # that many periods beyond the newest ``retention``, periods in ``timezone``.
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    timezone: str = "UTC"

    @property
    def policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            keep_last=self.retention,
            daily=self.daily,
            weekly=self.weekly,
            monthly=self.monthly,
            yearly=self.yearly,
            timezone=self.timezone,
        )


@dataclass
class DiskOutcome:
    vdi_uuid: str  # the source (live) disk
    vdi_name: str
    userdevice: str
    snapshot_vdi_uuid: str
    mode: DiskMode
    reason_code: FullReason | None  # None for a delta
    reason: str  # "full: the schedule 'sunday' forces full backups", "delta on …"
    size: int  # virtual size
    bytes: int = 0  # bytes of the VHD file written (each remote holds the same file)
    duration: float = 0.0
    files: dict[str, str] = field(default_factory=dict)  # remote id → relpath of the .vhd
    sha256: str = ""  # of the VHD file


@dataclass
class VmBackupOutcome:
    vm_uuid: str
    vm_name: str = ""
    status: str = "failed"  # "success" | "partial" (a remote dropped) | "failed" | "skipped"
    error: str = ""  # a sentence a person can act on ("" on success)
    timestamp: str = ""  # the backup's <ts>
    snapshot_uuid: str = ""  # the snapshot VM's uuid ("" for a halted VM: per-disk snapshots)
    disks: list[DiskOutcome] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)  # remote id → relpath of the .json
    failed_remotes: dict[str, str] = field(default_factory=dict)  # remote id → why dropped
    skipped_disks: list[tuple[str, str]] = field(default_factory=list)  # (vdi uuid, why)
    warnings: list[str] = field(default_factory=list)
    duration: float = 0.0
    #: The clean passes run under the lock (before the backup, and after it with retention
    #: and merges), per remote id: ``maintenance.VmMaintenance`` reports.
    maintenance: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(disk.bytes for disk in self.disks)


@dataclass(frozen=True)
class BackupDisk:
    vdi_uuid: str  # the source disk: the folder name under vdis/<job>/
    vdi_name: str
    path: str  # relpath of the .vhd from the remote's root
    differencing: bool
    size: int  # virtual size
    sha256: str = ""  # of the VHD file, when xoweb wrote it
    snapshot_vdi_uuid: str = ""  # the VHD's footer UUID
    vdi_ref: str = ""  # key of the disk in the metadata's maps
    mode: str = ""  # "full" | "delta" when xoweb wrote it
    reason: str = ""


@dataclass(frozen=True)
class BackupEntry:
    """One committed backup of one VM on one remote (its metadata file exists)."""

    path: str  # relpath of the .json
    vm_uuid: str
    vm_name: str
    timestamp: str  # the <ts>
    datetime: datetime  # aware UTC
    job_id: str
    schedule_id: str
    mode: str  # "delta" | "full" (our job mode; XO's own backups: "delta")
    size: int
    disks: tuple[BackupDisk, ...]
    written_by: str = "xo"  # "xoweb" when our extra fields are there

    def disk(self, vdi_uuid: str) -> BackupDisk:
        for disk in self.disks:
            if vdi_uuid in (disk.vdi_uuid, disk.snapshot_vdi_uuid):
                return disk
        known = ", ".join(disk.vdi_uuid for disk in self.disks) or "none"
        raise KeyError(f"backup {self.path} holds no disk {vdi_uuid} (it holds: {known})")


@dataclass(frozen=True)
class FileRestore:
    path: Path
    size: int
    sha256: str  # of the file written (raw: the disk's content, as sim.vdi_sha256 gives it)
