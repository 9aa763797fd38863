"""One pass over one VM folder, step by step (the steps and their order: maintenance.py's
module doc, docs/maintenance.md §3). Made and run by ``maintenance.maintain_vm``."""

from __future__ import annotations

from collections.abc import Sequence

from backups import vhd
from backups.vhd.mergestate import MergeState

from . import layout
from .clean import plan_vm_folder
from .clean_xo import xo_cache_entries
from .findings import ERROR, INFO, WARNING, Finding, MergeJob, VmMaintenance
from .inventory import VmFolder, is_merge_state, read_vm_folder
from .lock import VmLock
from .merging import merge_progress, metadata_after_merge, outdated_disks, unresumable
from .progress import Progress
from .prune import ScheduleRetention, decisions
from .remote import XO_CACHE, RemoteAdapter


class CleanPass:
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
                    why = unresumable(folder, state)
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
                            progress=merge_progress(step, 0),
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
                progress=merge_progress(step, job.block_size),
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
            data = metadata_after_merge(meta, found, stale)
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
