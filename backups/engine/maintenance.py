"""The clean pass, retention and merges of one VM folder on one remote (docs/maintenance.md).

``maintain_vm`` runs under the VM folder's lock (taken here, or the caller's: a VM backup holds
it already), in this order, so that a process killed or a power lost at any instant leaves a
remote where every committed backup restores exactly, and the next pass finishes the work:

1. remove temporary files (nobody writes them: the lock is ours);
2. resume interrupted merges (their state files), drop the state files of VHDs gone;
3. retention: delete the metadata of the backups each schedule drops (each deletion flushed
   before any file it named is touched);
4. read the folder, plan (``clean.plan_vm_folder``): delete incomplete backups' metadata
   (flushed), then unsound and unused files (no flush needed: a deletion lost to a power loss
   is found and done again);
5. merge unused deltas into the backups that need them, at most ``merges`` of them (the rest is
   reported, for the next pass or a merge task);
6. rewrite the metadata the merges changed (atomically);
7. drop Xen Orchestra's listing cache if it is out of date.

A dry run reads and reports the same findings with what would be done, and changes nothing
(it does not even take the lock: a folder someone holds is reported and skipped).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from backups.vhd.merge import DEFAULT_BATCH_BYTES

from . import layout
from .clean_pass import CleanPass
from .errors import LockHeld, RemoteError
from .findings import ERROR, WARNING, Finding, VmMaintenance
from .lock import VmLock
from .progress import NullProgress, Progress
from .prune import ScheduleRetention
from .remote import RemoteAdapter

logger = logging.getLogger(__name__)


def maintain_vm(
    remote: RemoteAdapter,
    vm_uuid: str,
    *,
    retention: Sequence[ScheduleRetention] = (),
    merges: int | None = None,
    dry_run: bool = False,
    lock: VmLock | None = None,
    holder: str = "clean pass",
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
    lock_lease: float = 60.0,
    lock_heartbeat: float = 10.0,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
) -> VmMaintenance:
    """One pass over ``xo-vm-backups/<vm_uuid>`` (see the module doc for the steps).

    ``merges``: how many merges this pass may do (None: all; 0: none, only report them).
    ``lock``: the VM folder's lock when the caller holds it already.
    """
    report = VmMaintenance(remote.remote_id, remote.name, vm_uuid, dry_run)
    progress = progress or NullProgress()
    taken: VmLock | None = None
    if lock is None and dry_run:
        # Only a look: taking the lock would write to the remote.
        look = VmLock(
            remote.fs,
            remote.path(layout.lock_path(vm_uuid)),
            holder=holder,
            lease=lock_lease,
            heartbeat=0,
            clock=clock,
            remote_name=remote.name,
        )
        held_by = look.holder_if_held()
        if held_by:
            report.skipped = f"the VM folder is locked by {held_by}: not read"
    elif lock is None:
        try:
            taken = lock = remote.lock(
                vm_uuid, holder=holder, lease=lock_lease, heartbeat=lock_heartbeat, clock=clock
            ).acquire()
        except LockHeld as error:
            report.skipped = str(error)
    if report.skipped:
        report.findings.append(
            Finding("locked", layout.lock_path(vm_uuid), report.skipped, "skipped", WARNING)
        )
        return report
    try:
        CleanPass(remote, vm_uuid, report, lock, progress, retention, merges, batch_bytes).run()
    finally:
        if taken is not None:
            taken.release()
    return report


def maintain_remote(
    remote: RemoteAdapter,
    *,
    vm_uuids: Sequence[str] | None = None,
    **options: object,
) -> list[VmMaintenance]:
    """``maintain_vm`` for every VM folder of the remote (or those given)."""
    reports = []
    for vm_uuid in vm_uuids if vm_uuids is not None else remote.list_vms():
        try:
            reports.append(maintain_vm(remote, vm_uuid, **options))  # type: ignore[arg-type]
        except RemoteError as error:
            failed = VmMaintenance(
                remote.remote_id, remote.name, vm_uuid, bool(options.get("dry_run"))
            )
            failed.findings.append(
                Finding("read_error", layout.vm_folder(vm_uuid), str(error), "stopped", ERROR)
            )
            reports.append(failed)
    return reports
