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

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backups import vhd
from backups.vhd.merge import DEFAULT_BATCH_BYTES
from backups.vhd.mergestate import MergeState
from backups.vhd.vhdfile import footer_uuid

from . import layout
from .clean import (
    ERROR,
    INFO,
    WARNING,
    Finding,
    MergeJob,
    outdated_disks,
    plan_vm_folder,
    xo_cache_entries,
)
from .errors import LockHeld, RemoteError
from .inventory import VmFolder, is_merge_state, read_vm_folder
from .lock import VmLock
from .progress import NullProgress, Progress
from .prune import PruneDecision, ScheduleRetention, decisions
from .remote import XO_CACHE, RemoteAdapter

logger = logging.getLogger(__name__)


@dataclass
class VmMaintenance:
    """What one pass did (or, dry, would do) in one VM folder on one remote."""

    remote_id: str
    remote_name: str
    vm_uuid: str
    dry_run: bool = False
    findings: list[Finding] = field(default_factory=list)
    pruned: list[PruneDecision] = field(default_factory=list)  # every verdict, kept or not
    merges_done: int = 0
    merges_left: int = 0
    skipped: str = ""  # why nothing was done (a live lock)

    @property
    def dropped(self) -> list[PruneDecision]:
        return [decision for decision in self.pruned if not decision.keep]

    @property
    def changed(self) -> bool:
        return not self.dry_run and (
            any(finding.done for finding in self.findings) or bool(self.dropped)
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "remote": self.remote_name,
            "vm": self.vm_uuid,
            "dry_run": self.dry_run,
            "skipped": self.skipped,
            "findings": [finding.as_dict() for finding in self.findings],
            "retention": [decision.as_dict() for decision in self.pruned],
            "merges_done": self.merges_done,
            "merges_left": self.merges_left,
        }


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
        _Pass(remote, vm_uuid, report, lock, progress, retention, merges, batch_bytes).run()
    finally:
        if taken is not None:
            taken.release()
    return report


class _Pass:
    def __init__(
        self,
        remote: RemoteAdapter,
        vm_uuid: str,
        report: VmMaintenance,
        lock: VmLock | None,
        progress: Progress,
        retention: Sequence[ScheduleRetention],
        merges: int | None,
        batch_bytes: int,
    ) -> None:
        self.remote = remote
        self.fs = remote.fs
        self.vm_uuid = vm_uuid
        self.report = report
        self.dry = report.dry_run
        self.lock = lock
        self.progress = progress
        self.retention = retention
        self.budget = merges
        self.batch_bytes = batch_bytes
        #: Disk folders with a merge that cannot be finished: nothing there is touched.
        self.frozen: set[str] = set()

    def note(self, finding: Finding) -> Finding:
        self.report.findings.append(finding)
        text = f"{finding.path}: {finding.message} → {finding.action}"
        (self.progress.warning if finding.severity != INFO else self.progress.info)(text)
        return finding

    def check(self) -> None:
        self.progress.check()
        if self.lock is not None and not self.dry:
            self.lock.check()

    def run(self) -> None:
        with self.progress.subtask(
            f"{'dry run of the ' if self.dry else ''}clean pass of VM {self.vm_uuid} on "
            f"{self.remote}",
            kind="clean",
        ) as step:
            self.progress = step
            self.remove_temporaries()
            self.resume_merges()
            self.prune()
            found = read_vm_folder(self.remote, self.vm_uuid)
            plan = plan_vm_folder(found, self.exists, self.xva_tail, frozen=self.frozen)
            budget = len(plan.merges) if self.budget is None else max(0, self.budget)
            planned, later = plan.merges[:budget], plan.merges[budget:]
            for finding in plan.findings:
                self.act(finding, finding.action)
            if not self.dry:
                self.check()
                for relpath in plan.delete_metadata:
                    self.remote.delete_backup(relpath)
                for relpath in plan.delete_files:
                    self.unlink(relpath)
                for relpath in plan.delete_trees:
                    self.remove_tree(relpath)
            for job in planned:
                self.merge(found, job)
            for job in later:
                self.report.merges_left += 1
                self.note(
                    Finding(
                        "merge_pending",
                        f"{job.folder}/{job.target}",
                        f"unused: {self.describe(job)}",
                        "left for the next pass (merge budget reached)",
                    )
                )
            self.rewrite_outdated()
            self.xo_cache(plan.drop_xo_cache)

    # -- steps ----------------------------------------------------------------------------

    def act(self, finding: Finding, action: str) -> None:
        """Record a planned finding as done, or (dry run) as what would be done."""
        left = action.startswith(("left", "warning", "nothing", "skipped"))
        finding.action = action if (left or not self.dry) else f"would be {action}"
        finding.done = not left and not self.dry
        self.note(finding)

    def exists(self, relpath: str) -> bool:
        return self.fs.exists(self.remote.path(relpath))

    def xva_tail(self, relpath: str) -> bytes:
        path = self.remote.path(relpath)
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
                handle.seek(max(0, path.stat().st_size - 1024))
                return head + handle.read(1024)
        except OSError:
            return b""

    def unlink(self, relpath: str) -> None:
        try:
            self.fs.unlink(self.remote.path(relpath))
        except FileNotFoundError:
            pass
        except OSError as error:
            raise self.remote.error(f"delete {relpath}", error) from None

    def remove_tree(self, relpath: str) -> None:
        path = self.remote.path(relpath)
        if not path.is_dir():
            return self.unlink(relpath)
        for name in self.fs.listdir(path):
            self.remove_tree(f"{relpath}/{name}")
        self.fs.rmdir(path)

    def remove_temporaries(self) -> None:
        """Dot-named files of the VM folder and its disk folders, and the tombstones of its
        lock (the lock is ours, so no process is writing any of them)."""
        folder = layout.vm_folder(self.vm_uuid)
        names = []
        for name in self.listdir(layout.BACKUP_ROOT):
            if name.startswith(f".{self.vm_uuid}.lock."):
                names.append(f"{layout.BACKUP_ROOT}/{name}")
        for relpath in [folder, *self.disk_folders()]:
            names += [
                f"{relpath}/{name}"
                for name in self.listdir(relpath)
                if name.startswith(".")
                and not is_merge_state(name)
                and not self.remote.path(f"{relpath}/{name}").is_dir()
            ]
        for relpath in names:
            self.act(
                Finding(
                    "temporary", relpath, "temporary file of a process that stopped", "deleted"
                ),
                "deleted",
            )
            if not self.dry:
                self.unlink(relpath)

    def resume_merges(self) -> None:
        for relpath in self.disk_folders():
            folder = self.remote.path(relpath)
            states = [name for name in self.listdir(relpath) if is_merge_state(name)]
            if not states:
                continue
            for name in states:
                try:
                    state = MergeState.load(folder / name)
                except vhd.MergeError:
                    state = None
                if state is None or not (
                    (folder / state.parent).exists() or (folder / state.children[-1]).exists()
                ):
                    what = "unreadable" if state is None else f"of {state.parent}, which is gone"
                    self.act(
                        Finding(
                            "stale_merge_state",
                            f"{relpath}/{name}",
                            f"merge state {what}",
                            "deleted",
                        ),
                        "deleted",
                    )
                    if not self.dry:
                        self.unlink(f"{relpath}/{name}")
                    continue
                finding = Finding(
                    "interrupted_merge",
                    f"{relpath}/{state.parent}",
                    f"merge of {', '.join(state.children)} into {state.parent} was interrupted",
                    "resumed",
                    WARNING,
                )
                if self.dry:
                    why = _unresumable(folder, state)
                    if why:
                        self.frozen.add(relpath)
                        finding.kind, finding.severity = "merge_failed", ERROR
                        finding.message += f" and cannot be finished: {why}"
                        self.act(finding, "left alone")
                    else:
                        self.act(finding, "resumed")
                    continue
                self.check()
                try:
                    with self.progress.subtask(
                        f"resume the merge into {state.children[-1]}", kind="merge"
                    ) as step:
                        vhd.merge(
                            [folder / child for child in state.children],
                            batch_bytes=self.batch_bytes,
                            progress=_merge_progress(step, 0),
                            io=self.fs,
                        )
                except vhd.VhdError as error:
                    self.frozen.add(relpath)
                    finding.kind, finding.severity = "merge_failed", ERROR
                    finding.message += f" and cannot be finished: {error}"
                    self.act(finding, "left alone")
                    continue
                self.act(finding, "resumed")

    def prune(self) -> None:
        if not self.retention:
            return
        entries = self.remote.list_backups(self.vm_uuid)
        self.report.pruned = decisions(entries, self.retention)
        for decision in self.report.dropped:
            self.progress.info(
                f"{'would drop' if self.dry else 'dropped'} {decision.path}: {decision.reason}"
            )
            if not self.dry:
                self.check()
                self.remote.delete_backup(decision.path)

    def merge(self, found: VmFolder, job: MergeJob) -> None:
        finding = Finding(
            "unused_merge",
            f"{job.folder}/{job.target}",
            f"unused: {self.describe(job)}",
            f"merged into {job.result} ({job.blocks} blocks)",
        )
        if self.dry:
            self.act(
                finding, f"merged into {job.result} ({job.blocks} blocks), its metadata rewritten"
            )
            return
        self.check()
        folder = self.remote.path(job.folder)
        with self.progress.subtask(
            f"merge {', '.join(job.children)} into {job.target}", kind="merge", total=job.bytes
        ) as step:
            vhd.merge(
                [folder / child for child in job.children],
                batch_bytes=self.batch_bytes,
                progress=_merge_progress(step, job.block_size),
                io=self.fs,
            )
        self.report.merges_done += 1
        self.act(finding, finding.action)

    @staticmethod
    def describe(job: MergeJob) -> str:
        if len(job.children) > 1:
            return f"{job.target} and {', '.join(job.children[:-1])} hold blocks {job.result} needs"
        return f"{job.target} holds blocks {job.result} needs"

    def rewrite_outdated(self) -> None:
        """Metadata the merges (of this pass or an interrupted one) changed: rewritten."""
        if self.dry:
            return
        self.check()
        found = read_vm_folder(self.remote, self.vm_uuid)
        for _relpath, meta in sorted(found.metadata.items()):
            stale = outdated_disks(meta, found)
            if not stale or meta.data is None or meta.entry is None:
                continue
            data = copy.deepcopy(meta.data)
            sizes = {
                node.relpath: node.file_size
                for disk in found.disks.values()
                for node in disk.vhds.values()
            }
            ours = (data.get("xoweb") or {}).get("disks") or {}
            for ref, node in stale:
                data.setdefault("isVhdDifferencing", {})[ref] = node.differencing
                other = data["vdis"][ref].setdefault("other_config", {})
                if node.differencing:
                    other["xo:base_delta_vdi"] = node.parent_uuid
                else:
                    other.pop("xo:base_delta_vdi", None)
                if isinstance(ours.get(ref), dict):
                    ours[ref].update(sha256="", size=node.file_size, merged=True)
            data["size"] = sum(sizes.get(disk.path, 0) for disk in meta.entry.disks)
            # Metadata this pass's merges changed is reported with the merge; the planned
            # rewrites (an interrupted pass's) were reported when planned.
            self.remote.write_metadata(self.vm_uuid, meta.name, data)

    def xo_cache(self, drop: bool) -> None:
        relpath = f"{layout.vm_folder(self.vm_uuid)}/{XO_CACHE}"
        if not self.exists(relpath):
            return
        count = xo_cache_entries(self.remote, relpath)
        jsons = [
            n
            for n in self.listdir(layout.vm_folder(self.vm_uuid))
            if n.endswith(".json") and not n.startswith(".")
        ]
        if not drop and count == len(jsons):
            return
        self.act(
            Finding(
                "xo_cache",
                relpath,
                f"lists {count if count is not None else 'an unreadable number of'} backups, "
                f"the folder holds {len(jsons)}",
                "deleted (Xen Orchestra rebuilds it)",
            ),
            "deleted (Xen Orchestra rebuilds it)",
        )
        if not self.dry:
            self.unlink(relpath)

    # -- helpers ----------------------------------------------------------------------------

    def listdir(self, relpath: str) -> list[str]:
        try:
            return sorted(self.fs.listdir(self.remote.path(relpath)))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self.remote.error(f"list {relpath}", error) from None

    def disk_folders(self) -> list[str]:
        vdis = f"{layout.vm_folder(self.vm_uuid)}/vdis"
        out = []
        for job in self.listdir(vdis):
            if self.remote.path(f"{vdis}/{job}").is_dir():
                out += [
                    f"{vdis}/{job}/{disk}"
                    for disk in self.listdir(f"{vdis}/{job}")
                    if self.remote.path(f"{vdis}/{job}/{disk}").is_dir()
                ]
        return out


def _unresumable(folder: Path, state: MergeState) -> str:
    """Why an interrupted merge could not be finished (what a dry run can tell without it)."""
    parent, newest = folder / state.parent, folder / state.children[-1]
    try:
        if parent.exists():
            current = str(footer_uuid(parent))
            if current not in (state.parent_uuid, state.child_uuid):
                return (
                    f"{state.parent} has UUID {current}, not {state.parent_uuid} as the state "
                    "records (the file changed since the merge started)"
                )
            if (
                current == state.child_uuid
                and newest.exists()
                and str(footer_uuid(newest)) != current
            ):
                return f"{state.parent} carries the UUID the state gives the merged file"
        elif str(footer_uuid(newest)) != state.child_uuid:
            return f"{state.parent} is gone and {state.children[-1]} is not the merged file"
    except (OSError, vhd.VhdError) as error:
        return str(error)
    return ""


def _merge_progress(step: Progress, block_size: int) -> Callable[[int, int], None]:
    """vhd.merge's (blocks merged, blocks) as bytes (or blocks when the size is unknown)."""
    scale = block_size or 1

    def report(done: int, total: int) -> None:
        step.update(done=done * scale, total=total * scale)
        step.check()

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
