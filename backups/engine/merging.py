"""What follows a merge, and what a resume needs (docs/maintenance.md §4): whether metadata
still describes the files it names, the metadata rewritten after a merge, whether an
interrupted merge can be finished, and a merge's progress in bytes."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backups import vhd
from backups.vhd.mergestate import MergeState
from backups.vhd.vhdfile import footer_uuid

from .findings import CleanPlan
from .inventory import MetadataFile, VhdNode, VmFolder
from .progress import Progress

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


def plan_outdated(found: VmFolder, incomplete: set[str], plan: CleanPlan) -> None:
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


def unresumable(folder: Path, state: MergeState) -> str:
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


def merge_progress(step: Progress, block_size: int) -> Callable[[int, int], None]:
    """vhd.merge's (blocks merged, blocks) as bytes (or blocks when the size is unknown)."""
    scale = block_size or 1

    def report(done: int, total: int) -> None:
        step.update(done=done * scale, total=total * scale)
        step.check()

    return report


def metadata_after_merge(
    meta: MetadataFile, found: VmFolder, stale: list[tuple[str, VhdNode]]
) -> dict[str, Any]:
    """``meta``'s data once it says what the merged files now are (docs/remote-format.md §2):
    ``isVhdDifferencing``, ``xo:base_delta_vdi``, ``size``; ours: ``sha256`` cleared (the file
    changed), its ``size``, ``merged``."""
    assert meta.data is not None and meta.entry is not None
    data = copy.deepcopy(meta.data)
    sizes = {
        node.relpath: node.file_size for disk in found.disks.values() for node in disk.vhds.values()
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
    return data
