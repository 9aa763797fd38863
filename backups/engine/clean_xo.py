"""The rows of Xen Orchestra's cleanVm table for files xoweb never writes but meets on a
shared remote: VHD-directory aliases and their ``data/``, XVA files (XO's full backups), their
checksums, and XO's listing cache (docs/maintenance.md §3)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable

from .findings import WARNING, CleanPlan
from .inventory import DiskFolder, VmFolder
from .remote import RemoteAdapter


def plan_aliases(disk: DiskFolder, used: set[str], plan: CleanPlan) -> None:
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


def plan_xvas(found: VmFolder, used: set[str], plan: CleanPlan) -> None:
    for relpath in sorted(found.xvas):
        if relpath not in used:
            plan.delete_files.append(relpath)
            plan.add("unused_xva", relpath, "no backup names this XVA", "deleted")
    for relpath in sorted(found.checksums):
        if relpath.removesuffix(".checksum") not in found.xvas:
            plan.delete_files.append(relpath)
            plan.add("orphan_checksum", relpath, "its XVA is gone", "deleted")


def plan_xva_checks(
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


def plan_xo_cache(found: VmFolder, plan: CleanPlan) -> None:
    plan.drop_xo_cache = found.xo_cache and bool(
        plan.delete_metadata or plan.merges or plan.outdated
    )


def xo_cache_entries(remote: RemoteAdapter, relpath: str) -> int | None:
    """The number of backups XO's ``cache.json.gz`` lists (None if it cannot be read)."""
    try:
        return len(json.loads(gzip.decompress(remote.fs.read_bytes(remote.path(relpath)))))
    except (OSError, ValueError, EOFError, TypeError):
        return None
