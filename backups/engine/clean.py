"""The clean pass's decisions: Xen Orchestra's cleanVm table, row by row (docs/maintenance.md §3).

``plan_vm_folder`` is pure over an inventory (``inventory.py``): it returns what is wrong and
what to do, and changes nothing; ``maintenance.py`` does it, in the order that keeps every
committed backup restorable whatever moment the process or the power stops.

Decisions, per VM folder:

1. a metadata file that cannot be read names files nobody knows: no VHD or XVA of the folder
   is deleted or merged while it is there (reported; a person decides);
2. a VHD that does not open (a format error) is *broken*; a differencing VHD whose parent is
   missing, broken or not the one it names is an *orphan*, and so are its descendants;
3. a backup whose metadata names a missing, broken or orphan file is *incomplete*: its
   metadata is deleted (it would not restore);
4. the files the remaining metadata names are *used*. An unused VHD with a used descendant
   is folded into it: the run ``[oldest unused ancestor … first used descendant]`` is merged
   into that ancestor, which takes the used file's name and UUID (XO's merge); an unused VHD
   with no used descendant is deleted; a parent with several children (a fork) is left alone;
5. two VHDs with one UUID: the one that holds every block of the other stays;
6. after a merge, the metadata that names the merged file says so (``isVhdDifferencing``,
   the new parent in ``xo:base_delta_vdi``, ``size``; its SHA-256 is cleared, since the file
   changed);
7. Xen Orchestra's rows xoweb does not write but meets on a shared remote: VHD-directory
   aliases and their ``data/``, XVA files, their checksums, and XO's listing cache.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .inventory import DiskFolder, MetadataFile, VhdNode, VmFolder
from .remote import RemoteAdapter

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


def plan_vm_folder(
    found: VmFolder,
    exists: Callable[[str], bool],
    xva_tail: Callable[[str], bytes],
    *,
    frozen: set[str] | frozenset[str] = frozenset(),
) -> CleanPlan:
    """What is wrong in one VM folder and what to do (see the module doc). Pure but for the
    two probes: ``exists(relpath)`` and ``xva_tail(relpath)`` (its first and last bytes).

    ``frozen``: disk folders where an interrupted merge cannot be finished; no file there is
    deleted or merged (a person decides)."""
    plan = CleanPlan()
    if found.unreadable:
        for node in found.unreadable:
            plan.add("read_error", node.relpath, node.unreadable, "nothing changed", ERROR)
        return plan
    unknown = found.references_unknown
    for meta in unknown:
        plan.add(
            "unreadable_metadata",
            meta.relpath,
            f"metadata cannot be read ({meta.problem}): the files it names are unknown",
            "left alone; no VHD or XVA of this VM is deleted or merged until it is fixed",
            WARNING,
        )

    dead: dict[str, str] = {}  # relpath → why it is unsound
    for disk in found.disks.values():
        # A folder whose interrupted merge cannot be finished is a person's to look at: its
        # files are neither unsound nor unused for this pass, and the backups naming them stay.
        if disk.relpath not in frozen:
            dead.update(_unsound(disk, plan))

    files = {node.relpath for disk in found.disks.values() for node in disk.vhds.values()} | set(
        found.xvas
    )
    aliases = {
        f"{disk.relpath}/{name}": target
        for disk in found.disks.values()
        for name, target in disk.aliases.items()
    }
    incomplete: set[str] = set()
    for meta in sorted(found.metadata.values(), key=lambda meta: meta.relpath):
        why = _incomplete(meta, files, aliases, dead, exists)
        if why:
            incomplete.add(meta.relpath)
            plan.delete_metadata.append(meta.relpath)
            plan.add(
                "incomplete_backup", meta.relpath, why, "deleted (it would not restore)", WARNING
            )
    used = {
        path
        for meta in found.metadata.values()
        if meta.relpath not in incomplete
        for path in meta.references
    }
    if not unknown:
        plan.delete_files.extend(sorted(dead))
        for disk in found.disks.values():
            if disk.relpath in frozen:
                continue
            _plan_disk(disk, used, dead, plan)
            _plan_aliases(disk, used, plan)
        _plan_xvas(found, used, plan)
    _plan_outdated(found, incomplete, plan)
    _plan_xva_checks(found, used, xva_tail, plan)
    _plan_xo_cache(found, plan)
    return plan


# -- unsound files -------------------------------------------------------------------------------


def _unsound(disk: DiskFolder, plan: CleanPlan) -> dict[str, str]:
    """Broken VHDs and orphans (missing parent, and every descendant of an unsound file)."""
    dead: dict[str, str] = {}
    for node in disk.vhds.values():
        if node.broken:
            dead[node.relpath] = "does not open"
            plan.add("broken_vhd", node.relpath, node.broken, "deleted", WARNING)
    changed = True
    while changed:  # descendants of an unsound file are orphans too
        changed = False
        for node in disk.vhds.values():
            if node.relpath in dead or not node.differencing:
                continue
            parent = disk.parent_of(node)
            if parent and disk.vhds[parent].relpath not in dead:
                continue
            if parent:
                why = f"its parent {parent} is unsound"
            elif node.parent_names:
                why = f"its parent {node.parent_names[0]} is missing or is not UUID {node.parent_uuid}"
            else:
                why = f"its parent (UUID {node.parent_uuid}) is not in this folder"
            dead[node.relpath] = why
            plan.add("missing_parent", node.relpath, f"broken chain: {why}", "deleted", WARNING)
            changed = True
    return dead


def _incomplete(
    meta: MetadataFile,
    files: set[str],
    aliases: dict[str, str],
    dead: dict[str, str],
    exists: Callable[[str], bool],
) -> str:
    if meta.unreadable:
        return ""
    for relpath in sorted(meta.references):
        if relpath in dead:
            return f"names {relpath.rsplit('/', 1)[-1]}, which {dead[relpath]}"
        if relpath in aliases:
            if not aliases[relpath]:
                return f"names the alias {relpath.rsplit('/', 1)[-1]}, which cannot be read"
            continue
        if relpath not in files and not exists(relpath):
            return f"names {relpath.rsplit('/', 1)[-1]}, which is missing"
    return ""


# -- unused files and merges ---------------------------------------------------------------------


def _children(disk: DiskFolder, dead: dict[str, str]) -> dict[str, list[str]]:
    children: dict[str, list[str]] = {name: [] for name in disk.vhds}
    for name, node in disk.vhds.items():
        if node.relpath in dead or not node.differencing:
            continue
        parent = disk.parent_of(node)
        if parent:
            children[parent].append(name)
    return children


def _plan_disk(disk: DiskFolder, used: set[str], dead: dict[str, str], plan: CleanPlan) -> None:
    live = {name: node for name, node in disk.vhds.items() if node.relpath not in dead}
    children = _children(disk, dead)
    is_used = {name: node.relpath in used for name, node in live.items()}
    duplicates = _plan_duplicates(live, is_used, children, plan)

    def used_below(name: str, seen: frozenset[str] = frozenset()) -> bool:
        if name in seen:
            return False
        return any(is_used[child] or used_below(child, seen | {name}) for child in children[name])

    in_merge: set[str] = set()
    for name, node in sorted(live.items()):
        if not is_used[name] or not node.differencing:
            continue
        parent = disk.parent_of(node)
        if not parent or is_used.get(parent, True):
            continue
        run = [name]
        target = parent
        while True:
            if len(children[target]) != 1:
                plan.add(
                    "fork",
                    live[target].relpath,
                    f"{len(children[target])} files name it as their parent "
                    f"({', '.join(sorted(children[target]))}); a fork cannot be merged",
                    "left alone",
                    ERROR,
                )
                run = []
                break
            above = disk.parent_of(live[target]) if live[target].differencing else ""
            if not above or is_used.get(above, True):
                break
            run.insert(0, target)
            target = above
        if not run:
            continue
        cost = len(frozenset().union(*(live[child].blocks for child in run)))
        plan.merges.append(
            MergeJob(disk.relpath, target, tuple(run), cost, live[name].block_size or 2 * 2**20)
        )
        in_merge.update([target, *run])
    for name, node in sorted(live.items()):
        if is_used[name] or name in in_merge or name in duplicates:
            continue
        if used_below(name):
            continue  # in a fork: reported above
        plan.delete_files.append(node.relpath)
        plan.add("unused_vhd", node.relpath, "no backup uses it or a file after it", "deleted")


def _plan_duplicates(
    live: dict[str, VhdNode],
    is_used: dict[str, bool],
    children: dict[str, list[str]],
    plan: CleanPlan,
) -> set[str]:
    """Resolve VHDs sharing a UUID; returns the names deleted for it."""
    by_uuid: dict[str, list[VhdNode]] = {}
    for node in live.values():
        by_uuid.setdefault(node.uuid, []).append(node)
    deleted: set[str] = set()
    for uuid, group in sorted(by_uuid.items()):
        if len(group) < 2:
            continue
        group.sort(key=lambda node: (not is_used[node.name], -len(node.blocks), node.name))
        keeper = next((c for c in group if all(o.blocks <= c.blocks for o in group)), None)
        names = ", ".join(node.name for node in group)
        for other in group:
            if other is keeper:
                continue
            if keeper is None:
                plan.add(
                    "duplicate_uuid",
                    other.relpath,
                    f"{names} share UUID {uuid} and none holds every block of the others",
                    "left alone",
                    ERROR,
                )
            elif is_used[other.name] or children[other.name]:
                plan.add(
                    "duplicate_uuid",
                    other.relpath,
                    f"shares UUID {uuid} with {keeper.name}, which holds all its blocks, but "
                    "a backup or a later file still uses it",
                    "left alone",
                    WARNING,
                )
            else:
                deleted.add(other.name)
                plan.delete_files.append(other.relpath)
                plan.add(
                    "duplicate_uuid",
                    other.relpath,
                    f"shares UUID {uuid} with {keeper.name}, which holds all its blocks",
                    f"deleted (kept {keeper.name})",
                    WARNING,
                )
    return deleted


# -- Xen Orchestra's VHD directories and XVA files ---------------------------------------------


def _plan_aliases(disk: DiskFolder, used: set[str], plan: CleanPlan) -> None:
    named = set()
    for name, target in sorted(disk.aliases.items()):
        relpath = f"{disk.relpath}/{name}"
        entry = target.rsplit("/", 1)[-1] if target else ""
        if target and target.startswith("data/") and entry in disk.data_entries:
            named.add(entry)
            continue
        if relpath in used:
            continue  # its backup is incomplete and reported; the alias goes with it next time
        plan.delete_files.append(relpath)
        plan.add(
            "broken_alias",
            relpath,
            f"alias to {target or '(unreadable)'}, which is missing",
            "deleted",
            WARNING,
        )
    for entry in disk.data_entries:
        if entry not in named:
            relpath = f"{disk.relpath}/data/{entry}"
            plan.delete_trees.append(relpath)
            plan.add("orphan_data", relpath, "no alias names this VHD directory", "deleted")


def _plan_xvas(found: VmFolder, used: set[str], plan: CleanPlan) -> None:
    for relpath in sorted(found.xvas):
        if relpath not in used:
            plan.delete_files.append(relpath)
            plan.add("unused_xva", relpath, "no backup names this XVA", "deleted")
    for relpath in sorted(found.checksums):
        if relpath.removesuffix(".checksum") not in found.xvas:
            plan.delete_files.append(relpath)
            plan.add("orphan_checksum", relpath, "its XVA is gone", "deleted")


def _plan_xva_checks(
    found: VmFolder, used: set[str], xva_tail: Callable[[str], bytes], plan: CleanPlan
) -> None:
    """XO's warnings: an XVA whose size differs from its metadata, or that does not end like
    an uncompressed tar (two zero blocks) and is not gzip or zstd. Never deleted."""
    for meta in found.metadata.values():
        if not meta.xva or meta.xva not in found.xvas or meta.data is None:
            continue
        size = found.xvas[meta.xva]
        expected = meta.data.get("size")
        if isinstance(expected, int) and expected != size:
            plan.add(
                "xva_size",
                meta.xva,
                f"{size} bytes, but its metadata says {expected}",
                "warning only",
                WARNING,
            )
        head_tail = xva_tail(meta.xva)
        head, tail = head_tail[:4], head_tail[4:]
        compressed = head[:2] == b"\x1f\x8b" or head == b"\x28\xb5\x2f\xfd"
        if not compressed and tail != bytes(1024):
            plan.add(
                "xva_invalid",
                meta.xva,
                "does not end with the two zero blocks of a tar file (truncated?)",
                "warning only",
                WARNING,
            )


def _plan_xo_cache(found: VmFolder, plan: CleanPlan) -> None:
    plan.drop_xo_cache = found.xo_cache and bool(
        plan.delete_metadata or plan.merges or plan.outdated
    )


def xo_cache_entries(remote: RemoteAdapter, relpath: str) -> int | None:
    """The number of backups XO's ``cache.json.gz`` lists (None if it cannot be read)."""
    try:
        return len(json.loads(gzip.decompress(remote.fs.read_bytes(remote.path(relpath)))))
    except (OSError, ValueError, EOFError, TypeError):
        return None


# -- metadata after a merge --------------------------------------------------------------------


BASE_KEY = "xo:base_delta_vdi"


def disk_facts(meta: MetadataFile, ref: str) -> tuple[bool, str]:
    """(differencing, base uuid) that ``meta`` records for the disk ``ref``."""
    data = meta.data or {}
    differencing = bool((data.get("isVhdDifferencing") or {}).get(ref, False))
    record = (data.get("vdis") or {}).get(ref) or {}
    base = (record.get("other_config") or {}).get(BASE_KEY, "") if differencing else ""
    return differencing, str(base or "")


def outdated_disks(meta: MetadataFile, found: VmFolder) -> list[tuple[str, VhdNode]]:
    """The disks of ``meta`` whose file no longer is what the metadata says (a merge changed
    it): its type or its parent UUID differs."""
    nodes = {node.relpath: node for disk in found.disks.values() for node in disk.vhds.values()}
    out = []
    if meta.entry is None:
        return out
    for disk in meta.entry.disks:
        node = nodes.get(disk.path)
        if node is None or node.broken or node.unreadable:
            continue
        differencing, base = disk_facts(meta, disk.vdi_ref)
        if differencing != node.differencing or (node.differencing and base != node.parent_uuid):
            out.append((disk.vdi_ref, node))
    return out


def _plan_outdated(found: VmFolder, incomplete: set[str], plan: CleanPlan) -> None:
    for meta in sorted(found.metadata.values(), key=lambda meta: meta.relpath):
        if meta.relpath in incomplete or meta.entry is None:
            continue
        stale = outdated_disks(meta, found)
        if stale:
            plan.outdated.append(meta.relpath)
            names = ", ".join(node.name for _ref, node in stale)
            plan.add(
                "metadata_outdated",
                meta.relpath,
                f"{names} changed in a merge since this metadata was written",
                "rewritten",
            )
