"""What one VM folder on a remote holds, read once for the clean pass (docs/maintenance.md §3).

The inventory lists every metadata file (parsed, with the files it names), every disk folder
``vdis/<job>/<vdi>/`` with its VHD files (footer UUID, type, parent link, or why it does not
open), its temporary files, merge state files and Xen Orchestra's VHD-directory aliases, and
the VM folder's own temporary files, XVA files and checksums. Nothing is changed here.

A VHD that fails with a format error is *broken*; one that cannot be read at all (an
``OSError``: a flaky share) is *unreadable*, which makes the clean pass leave the VM folder
alone: a read error is never a reason to delete.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from backups import vhd
from backups.vhd.mergestate import MergeState, find_finalizing_merge

from . import layout
from .errors import MetadataError, RemoteError
from .metadata import entry_from_metadata
from .remote import XO_CACHE, RemoteAdapter
from .values import BackupEntry

ALIAS_SUFFIX = ".alias.vhd"
MERGE_STATE_SUFFIX = ".merge.json"


@dataclass
class VhdNode:
    """One ``.vhd`` file of a disk folder."""

    name: str
    relpath: str
    path: Path  # on this host
    file_size: int = 0
    uuid: str = ""
    differencing: bool = False
    parent_uuid: str = ""
    parent_names: list[str] = field(default_factory=list)  # candidates in the same folder
    blocks: frozenset[int] = frozenset()
    block_size: int = 0
    broken: str = ""  # a format error: the file is unsound
    unreadable: str = ""  # an OS error: unknown


@dataclass
class DiskFolder:
    """``xo-vm-backups/<vm>/vdis/<job>/<vdi>/``."""

    relpath: str
    vhds: dict[str, VhdNode] = field(default_factory=dict)
    temporaries: list[str] = field(default_factory=list)
    merge_states: dict[str, MergeState | None] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # alias name → target ("" unreadable)
    data_entries: list[str] = field(default_factory=list)  # names under data/

    def parent_of(self, node: VhdNode) -> str:
        """The name of ``node``'s parent in this folder, "" if missing or not the one it names.

        The link holds when the parent's footer UUID is the one the child names, or during
        the one window of an interrupted merge where the parent already carries its newest
        child's UUID (its state file says so).
        """
        for name in node.parent_names:
            parent = self.vhds.get(name)
            if parent is None or parent.broken or parent.unreadable:
                continue
            if parent.uuid == node.parent_uuid:
                return name
            if (
                parent.uuid
                and node.parent_uuid
                and find_finalizing_merge(
                    parent.path, uuidlib.UUID(parent.uuid), uuidlib.UUID(node.parent_uuid)
                )
            ):
                return name
        return ""

    def chain(self, name: str) -> list[VhdNode]:
        """The files a read of ``name`` goes through, oldest (the full) first."""
        found: list[VhdNode] = []
        current = self.vhds.get(name)
        while current is not None and current not in found:
            found.append(current)
            if not current.differencing:
                break
            current = self.vhds.get(self.parent_of(current))
        return found[::-1]


@dataclass
class MetadataFile:
    """``xo-vm-backups/<vm>/<ts>.json``."""

    name: str
    relpath: str
    data: dict[str, Any] | None = None
    entry: BackupEntry | None = None  # a VHD backup xoweb reads
    problem: str = ""  # why it is not one (unreadable JSON, an XVA backup, a field missing)
    references: set[str] = field(default_factory=set)  # relpaths of the files it names
    xva: str = ""  # relpath of its XVA (Xen Orchestra's full mode)
    unreadable: bool = False  # its references are unknown


@dataclass
class VmFolder:
    vm_uuid: str
    relpath: str
    metadata: dict[str, MetadataFile] = field(default_factory=dict)  # by relpath
    disks: dict[str, DiskFolder] = field(default_factory=dict)  # by relpath
    temporaries: list[str] = field(default_factory=list)  # relpaths
    xvas: dict[str, int] = field(default_factory=dict)  # relpath → size
    checksums: list[str] = field(default_factory=list)  # relpaths of <ts>.xva.checksum
    xo_cache: bool = False

    @property
    def referenced(self) -> set[str]:
        return {path for meta in self.metadata.values() for path in meta.references}

    @property
    def references_unknown(self) -> list[MetadataFile]:
        return [meta for meta in self.metadata.values() if meta.unreadable]

    @property
    def unreadable(self) -> list[VhdNode]:
        return [
            node for disk in self.disks.values() for node in disk.vhds.values() if node.unreadable
        ]


def is_merge_state(name: str) -> bool:
    return name.startswith(".") and name.endswith(MERGE_STATE_SUFFIX)


def is_temporary(name: str) -> bool:
    """Dot-named files that are not merge states: ours (``.…partial``), Xen Orchestra's
    (``.<epoch>.<name>``), a merge state save cut short (``.…merge.json.tmp``)."""
    return name.startswith(".") and not is_merge_state(name)


def _listdir(remote: RemoteAdapter, relpath: str) -> list[tuple[str, bool]]:
    """(name, is a directory) in a folder, sorted; [] if it is missing."""
    path = remote.path(relpath)
    try:
        names = sorted(remote.fs.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as error:
        raise remote.error(f"list {relpath}", error) from None
    return [(name, (path / name).is_dir()) for name in names]


def read_vm_folder(remote: RemoteAdapter, vm_uuid: str) -> VmFolder:
    """Everything the clean pass needs to know about one VM folder (see the module doc)."""
    folder = layout.vm_folder(vm_uuid)
    found = VmFolder(vm_uuid, folder)
    for name, is_dir in _listdir(remote, folder):
        relpath = f"{folder}/{name}"
        if is_dir:
            if name == "vdis":
                _read_vdis(remote, relpath, found)
            continue
        if is_temporary(name):
            found.temporaries.append(relpath)
        elif name.endswith(".json") and layout.is_timestamp(name[:-5]):
            found.metadata[relpath] = read_metadata_file(remote, relpath)
        elif name == XO_CACHE:
            found.xo_cache = True
        elif name.endswith(".xva"):
            found.xvas[relpath] = _size(remote, relpath)
        elif name.endswith(".xva.checksum"):
            found.checksums.append(relpath)
    return found


def _size(remote: RemoteAdapter, relpath: str) -> int:
    try:
        return remote.path(relpath).stat().st_size
    except OSError:
        return 0


def read_metadata_file(remote: RemoteAdapter, relpath: str) -> MetadataFile:
    """A metadata file with the files it names; what is wrong with it, if anything."""
    vm_uuid, name = layout.split_vm_path(relpath)
    meta = MetadataFile(name, relpath)
    try:
        raw = remote.fs.read_bytes(remote.path(relpath))
    except OSError as error:
        raise remote.error(f"read {relpath}", error) from None
    try:
        data = json.loads(raw)
    except ValueError as error:
        meta.problem, meta.unreadable = f"not valid JSON ({error})", True
        return meta
    if not isinstance(data, dict):
        meta.problem, meta.unreadable = "not a JSON object", True
        return meta
    meta.data = data
    folder = layout.vm_folder(vm_uuid)
    vhds = data.get("vhds")
    if isinstance(vhds, dict):
        for value in vhds.values():
            if isinstance(value, str) and not value.startswith("/") and ".." not in value:
                meta.references.add(f"{folder}/{value.removeprefix('./')}")
    xva = data.get("xva")
    if data.get("mode") == "full" and isinstance(xva, str) and ".." not in xva:
        meta.xva = f"{folder}/{xva.removeprefix('./')}"
        meta.references.add(meta.xva)
    try:
        meta.entry = entry_from_metadata(relpath, data)
    except MetadataError as error:
        meta.problem = str(error).removeprefix(f"{relpath}: ")
        # An XVA backup (XO's full mode) names its files; anything else we cannot trust.
        meta.unreadable = not meta.xva and not isinstance(vhds, dict)
    return meta


def _read_vdis(remote: RemoteAdapter, vdis: str, found: VmFolder) -> None:
    for job, job_is_dir in _listdir(remote, vdis):
        if not job_is_dir:
            continue
        for disk, disk_is_dir in _listdir(remote, f"{vdis}/{job}"):
            if disk_is_dir:
                relpath = f"{vdis}/{job}/{disk}"
                found.disks[relpath] = read_disk_folder(remote, relpath)


def read_disk_folder(remote: RemoteAdapter, relpath: str) -> DiskFolder:
    disk = DiskFolder(relpath)
    for name, is_dir in _listdir(remote, relpath):
        if is_dir:
            if name == "data":
                disk.data_entries = [entry for entry, _ in _listdir(remote, f"{relpath}/data")]
            continue
        if is_merge_state(name):
            try:
                disk.merge_states[name] = MergeState.load(remote.path(f"{relpath}/{name}"))
            except vhd.MergeError:
                disk.merge_states[name] = None
        elif is_temporary(name):
            disk.temporaries.append(name)
        elif name.endswith(ALIAS_SUFFIX):
            try:
                disk.aliases[name] = (
                    remote.fs.read_bytes(remote.path(f"{relpath}/{name}"))
                    .decode("utf-8", "replace")
                    .strip()
                )
            except OSError:
                disk.aliases[name] = ""
        elif name.endswith(".vhd"):
            disk.vhds[name] = read_vhd_node(remote, f"{relpath}/{name}")
    return disk


def read_vhd_node(remote: RemoteAdapter, relpath: str) -> VhdNode:
    path = remote.path(relpath)
    node = VhdNode(PurePosixPath(relpath).name, relpath, path)
    try:
        opened = vhd.open_vhd(path)
    except vhd.VhdError as error:
        node.broken = str(error).replace(str(remote.root) + "/", "")
        node.file_size = _size(remote, relpath)
        return node
    except OSError as error:
        node.unreadable = f"{relpath}: {error.strerror or error}"
        return node
    with opened:
        node.file_size = opened.file_size
        node.uuid = str(opened.uuid)
        node.differencing = opened.disk_type == vhd.DiskType.DIFFERENCING
        node.blocks = (
            frozenset(opened.allocated_blocks()) if opened.bat is not None else frozenset()
        )
        if node.differencing and opened.header is not None:
            node.parent_uuid = str(opened.header.parent_uuid)
            for candidate in vhd.parent_candidates(opened):
                if candidate.parent == path.parent and candidate.name not in node.parent_names:
                    node.parent_names.append(candidate.name)
    return node


def backup_entries(found: VmFolder) -> list[BackupEntry]:
    return sorted(
        (meta.entry for meta in found.metadata.values() if meta.entry is not None),
        key=lambda entry: entry.timestamp,
    )


def ensure_readable(found: VmFolder) -> None:
    """``RemoteError`` naming the first file that could not be read (not: was unsound)."""
    for node in found.unreadable:
        raise RemoteError(node.unreadable)


def disk_chains(remote: RemoteAdapter, vm_uuid: str) -> dict[str, list[dict[str, Any]]]:
    """For every VHD of a VM folder, the files a restore of it reads, oldest (the full) first:
    ``{relpath: [{"file", "differencing", "size"}]}`` (what the restore point pages show)."""
    chains: dict[str, list[dict[str, Any]]] = {}
    vdis = f"{layout.vm_folder(vm_uuid)}/vdis"
    for job, job_is_dir in _listdir(remote, vdis):
        if not job_is_dir:
            continue
        for disk, disk_is_dir in _listdir(remote, f"{vdis}/{job}"):
            if not disk_is_dir:
                continue
            folder = read_disk_folder(remote, f"{vdis}/{job}/{disk}")
            for name, node in folder.vhds.items():
                chains[node.relpath] = [
                    {"file": link.name, "differencing": link.differencing, "size": link.file_size}
                    for link in folder.chain(name)
                ]
    return chains
