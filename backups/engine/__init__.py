"""xoweb's backup engine: plain Python, no Django (docs/backup-engine.md, docs/remote-format.md).

It takes plain values (``JobSettings``, ``ScheduleSettings``), a logged-in
``pools.xapi.XapiClient``, remote adapters and a progress object, and returns plain outcomes.
The Django side (``backups/services.py``) turns rows into these values and outcomes into rows.

* ``backup_vm(client, vm_uuid, job=, schedule=, remotes=, progress=, holder=, …)``
* ``restore_disk_to_sr``, ``restore_disk_to_file``, ``restore_vm``
* ``RemoteAdapter(root, remote_id=, name=)``: ``check``, ``space``, ``list_backups``,
  ``read_metadata``, ``write_metadata``, ``delete_backup``, ``atomic_file``, ``lock``
"""

from __future__ import annotations

from .errors import (
    ChainUnhealthy,
    EngineError,
    LockHeld,
    LockLost,
    MetadataError,
    NothingToBackUp,
    RemoteError,
    RestoreError,
    SnapshotFailed,
    TransferFailed,
)
from .lock import VmLock
from .planner import DiskMode, DiskPlan, FullReason
from .progress import NullProgress, Progress
from .remote import AtomicFile, RemoteAdapter, RemoteSpace
from .restore import restore_disk_to_file, restore_disk_to_sr
from .values import (
    BackupDisk,
    BackupEntry,
    DiskOutcome,
    FileRestore,
    JobSettings,
    ScheduleSettings,
    VmBackupOutcome,
)
from .vm_backup import backup_vm
from .vm_restore import restore_vm

__all__ = [
    "AtomicFile",
    "BackupDisk",
    "BackupEntry",
    "ChainUnhealthy",
    "DiskMode",
    "DiskOutcome",
    "DiskPlan",
    "EngineError",
    "FileRestore",
    "FullReason",
    "JobSettings",
    "LockHeld",
    "LockLost",
    "MetadataError",
    "NothingToBackUp",
    "NullProgress",
    "Progress",
    "RemoteAdapter",
    "RemoteError",
    "RemoteSpace",
    "RestoreError",
    "ScheduleSettings",
    "SnapshotFailed",
    "TransferFailed",
    "VmBackupOutcome",
    "VmLock",
    "backup_vm",
    "restore_disk_to_file",
    "restore_disk_to_sr",
    "restore_vm",
]
