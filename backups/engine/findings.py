"""What a clean pass finds and plans (docs/maintenance.md §3): findings, merges, the plan.

Plain values shared by the decisions (``clean.py``, ``clean_xo.py``, ``merging.py``) and the
pass that carries them out (``maintenance.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .prune import PruneDecision

#: Severities of a finding.
INFO, WARNING, ERROR = "info", "warning", "error"

#: Every kind of finding, with the row of XO's cleanVm table it answers (docs/maintenance.md).
KINDS = {
    "temporary": "temporary file left by a process that stopped",
    "interrupted_merge": "merge interrupted (its state file is there)",
    "stale_merge_state": "merge state file of a VHD that is gone",
    "merge_failed": "interrupted merge that cannot be finished",
    "broken_vhd": "VHD that does not open",
    "missing_parent": "VHD whose parent is missing (broken chain)",
    "duplicate_uuid": "two VHDs with one UUID",
    "fork": "a VHD with several children",
    "broken_alias": "VHD-directory alias to a missing, empty or non-VHD target",
    "orphan_data": "VHD-directory data that no alias names",
    "incomplete_backup": "metadata naming a missing or unsound file",
    "unused_merge": "unused VHD with a used child: merged",
    "merge_pending": "merge left for the next run",
    "unused_vhd": "unused VHD with no used child",
    "unused_xva": "XVA that no metadata names",
    "orphan_checksum": "XVA checksum without its XVA",
    "metadata_outdated": "metadata not updated after a merge",
    "xo_cache": "Xen Orchestra's listing cache out of date",
    "xva_size": "XVA size differs from its metadata",
    "xva_invalid": "XVA that does not end like a tar file",
    "unreadable_metadata": "metadata that cannot be read",
    "read_error": "file that could not be read",
    "locked": "VM folder locked by a live process",
}


@dataclass
class Finding:
    """One thing the clean pass found in a VM folder, and what it did (or would do)."""

    kind: str
    path: str  # relative to the remote's root
    message: str
    action: str  # "deleted", "merged into …", "resumed", "rewritten", "left alone", …
    severity: str = INFO
    done: bool = False  # the action happened (False in a dry run, or when it was left)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.path}: {self.message} → {self.action}"


@dataclass(frozen=True)
class MergeJob:
    """Fold ``children`` (file names, oldest first) into ``target``, in one disk folder."""

    folder: str
    target: str
    children: tuple[str, ...]
    blocks: int  # the children's allocated blocks: the cost of the merge
    block_size: int = 2 * 2**20

    @property
    def result(self) -> str:
        return self.children[-1]

    @property
    def bytes(self) -> int:
        return self.blocks * self.block_size


@dataclass
class CleanPlan:
    findings: list[Finding] = field(default_factory=list)
    delete_metadata: list[str] = field(default_factory=list)  # relpaths, incomplete backups
    delete_files: list[str] = field(default_factory=list)  # relpaths, after the metadata
    delete_trees: list[str] = field(default_factory=list)  # relpaths of VHD-directory data
    merges: list[MergeJob] = field(default_factory=list)
    outdated: list[str] = field(default_factory=list)  # metadata relpaths to rewrite
    drop_xo_cache: bool = False

    def add(self, kind: str, path: str, message: str, action: str, severity: str = INFO) -> Finding:
        finding = Finding(kind, path, message, action, severity)
        self.findings.append(finding)
        return finding


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
