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

from collections.abc import Callable

from .clean_xo import plan_aliases, plan_xo_cache, plan_xva_checks, plan_xvas
from .findings import ERROR, INFO, KINDS, WARNING, CleanPlan, Finding, MergeJob
from .inventory import DiskFolder, MetadataFile, VhdNode, VmFolder
from .merging import outdated_disks, plan_outdated

__all__ = ["ERROR", "INFO", "KINDS", "WARNING", "CleanPlan", "Finding", "MergeJob",
           "outdated_disks", "plan_vm_folder"]  # fmt: skip


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
            plan_aliases(disk, used, plan)
        plan_xvas(found, used, plan)
    plan_outdated(found, incomplete, plan)
    plan_xva_checks(found, used, xva_tail, plan)
    plan_xo_cache(found, plan)
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
