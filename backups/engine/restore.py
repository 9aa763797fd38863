"""Restores of one disk, exact (docs/backup-engine.md §7).

* **disk → SR**: ``VDI.create`` with every field XAPI requires, then ``PUT /import_raw_vdi``
  of one synthetic full VHD built from the chain and streamed block by block (its exact length
  is known before the first byte; no temporary full file). A failure destroys the new VDI.
* **disk → file**: the chain's raw content (``raw``) or the synthetic full VHD (``vhd``),
  written atomically (temporary name, fsync, rename, fsync of the folder).

The SHA-256 of a raw restore is of the disk's content, so it compares with the pool's.
A whole VM's restore (``vm_restore.py``) brings back each of its disks with the steps here:
:func:`find_sr`, :func:`open_disk_chain`, :func:`import_disk`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from backups import vhd
from pools.xapi import XapiClient, XapiError, XapiFailure

from .errors import RemoteError, RestoreError
from .progress import NullProgress, Progress
from .readahead import read_ahead
from .remote import RemoteAdapter
from .snapshots import destroy_vdis
from .values import BackupDisk, BackupEntry, FileRestore, KnownBad


def _find(remote: RemoteAdapter, backup: str, vdi_uuid: str) -> tuple[BackupEntry, BackupDisk]:
    try:
        entry = remote.backup(backup)
    except (RemoteError, OSError) as error:
        raise RestoreError(f"cannot read backup {backup} on {remote}: {error}") from None
    try:
        return entry, entry.disk(vdi_uuid)
    except KeyError as error:
        raise RestoreError(str(error.args[0])) from None


def open_disk_chain(
    remote: RemoteAdapter, disk: BackupDisk, known_bad: KnownBad | None = None
) -> vhd.Chain:
    """The disk's chain; ``RestoreError`` when it does not open, or when a file of it failed its
    last verification (``known_bad``): a restore never gives back bytes known to be wrong."""
    try:
        chain = vhd.open_chain(remote.path(disk.path))
    except (OSError, vhd.VhdError) as error:
        raise RestoreError(f"the disk's VHD chain on {remote} cannot be read: {error}") from None
    if known_bad is not None:
        for layer in chain.layers:
            try:
                relative = layer.path.relative_to(remote.root).as_posix()
            except ValueError:
                continue
            if known_bad(remote.remote_id, relative):
                chain.close()
                raise RestoreError(
                    f"not restored: {relative} on {remote} failed its last verification "
                    "(`manage.py backup_check` says why); restore another backup, or check "
                    "again once the remote is repaired"
                )
    return chain


def _counted(
    chunks: Iterator[bytes | memoryview], progress: Progress
) -> Iterator[bytes | memoryview]:
    for chunk in chunks:
        yield chunk
        progress.advance(len(chunk))


# -- disk → file ------------------------------------------------------------------------------


#: Compared with a chunk a piece at a time (a memcmp each), without a copy of the chunk.
_ZEROS = bytes(vhd.DEFAULT_BLOCK_SIZE)


def _is_zero(chunk: bytes | memoryview) -> bool:
    view = memoryview(chunk).cast("B")
    for start in range(0, len(view), len(_ZEROS)):
        piece = view[start : start + len(_ZEROS)]
        if piece != _ZEROS[: len(piece)]:
            return False
    return True


def restore_disk_to_file(
    remote: RemoteAdapter,
    backup: str,
    vdi_uuid: str,
    path: str | Path,
    *,
    fmt: str = "raw",
    progress: Progress | None = None,
    known_bad: KnownBad | None = None,
) -> FileRestore:
    """Write the disk ``vdi_uuid`` of ``backup`` to ``path`` as ``raw`` or ``vhd``."""
    progress = progress or NullProgress()
    if fmt not in ("raw", "vhd"):
        raise RestoreError(f"format {fmt!r} is not one of raw, vhd")
    path = Path(path)
    if not path.parent.is_dir():
        raise RestoreError(f"cannot restore to {path}: the folder {path.parent} does not exist")
    entry, disk = _find(remote, backup, vdi_uuid)
    target = RemoteAdapter(path.parent, name=f"restore target {path.parent}")
    with open_disk_chain(remote, disk, known_bad) as chain:
        if fmt == "raw":
            size, chunks = chain.size, chain.iter_raw()
        else:
            synthetic = vhd.synthetic_vhd(chain)
            size, chunks = synthetic.size, iter(synthetic)
        hasher = hashlib.sha256()
        label = f"restore {disk.vdi_name or vdi_uuid} of {entry.timestamp} to {path}"
        with progress.subtask(label, kind="restore", total=size) as step:
            try:
                with target.atomic_file(path.name) as handle:
                    for chunk in _counted(chunks, step):
                        hasher.update(chunk)
                        # A raw disk is mostly blocks never written: they become holes, so the
                        # file takes the room of the data, not of the whole disk.
                        if fmt == "raw" and _is_zero(chunk):
                            handle.skip(len(chunk))
                        else:
                            handle.write(chunk)
            except RemoteError as error:
                raise RestoreError(f"cannot write {path}: {error}") from None
    return FileRestore(path, size, hasher.hexdigest())


# -- disk → SR --------------------------------------------------------------------------------


def find_sr(client: XapiClient, sr_uuid: str) -> tuple[str, dict[str, Any]]:
    try:
        ref = client.call("SR.get_by_uuid", sr_uuid)
    except XapiFailure as error:
        if error.code == "UUID_INVALID":
            raise RestoreError(f"no SR with uuid {sr_uuid} on the pool {client.url}") from None
        raise
    return ref, client.call("SR.get_record", ref)


def _sr_full(error: XapiFailure, sr: dict[str, Any], size: int) -> RestoreError:
    """``SR_FULL [requested, maximum]`` (docs/xapi.md §6) as a sentence."""
    detail = ""
    if len(error.params) >= 2:
        detail = f" (SR_FULL: {error.params[0]} bytes requested, {error.params[1]} at most)"
    return RestoreError(
        f"SR '{sr.get('name_label', '')}' has no room for a disk of {size} bytes{detail}: "
        "free space there or choose another SR; nothing was created"
    )


def restore_disk_to_sr(
    client: XapiClient,
    remote: RemoteAdapter,
    backup: str,
    vdi_uuid: str,
    sr_uuid: str,
    *,
    progress: Progress | None = None,
    name_label: str | None = None,
    known_bad: KnownBad | None = None,
) -> str:
    """A new VDI on ``sr_uuid`` with the disk's content; returns its uuid."""
    progress = progress or NullProgress()
    entry, disk = _find(remote, backup, vdi_uuid)
    sr_ref, sr = find_sr(client, sr_uuid)
    record = remote.read_metadata(backup).get("vdis", {}).get(disk.vdi_ref, {})
    name = (
        name_label or f"{record.get('name_label') or disk.vdi_name} (restored {backup_date(entry)})"
    )
    with open_disk_chain(remote, disk, known_bad) as chain:
        return import_disk(
            client,
            chain,
            sr_ref,
            sr,
            name=name,
            description=record.get("name_description", ""),
            progress=progress,
            label=f"restore {disk.vdi_name or vdi_uuid} of {entry.timestamp}",
        )[1]


def backup_date(entry: BackupEntry) -> str:
    """When ``entry`` was taken, as a restored copy's name says it."""
    return entry.datetime.strftime("%Y-%m-%d %H:%M:%S UTC")


def import_disk(
    client: XapiClient,
    chain: vhd.Chain,
    sr_ref: str,
    sr: dict[str, Any],
    *,
    name: str,
    description: str,
    progress: Progress,
    label: str,
    other_config: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Steps: create the VDI (every required field), stream the synthetic VHD into it, check
    the import task; on failure destroy the VDI. Returns (ref, uuid)."""
    synthetic = vhd.synthetic_vhd(chain)
    fields = {
        "name_label": name,
        "name_description": description,
        "SR": sr_ref,
        "virtual_size": str(chain.size),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": dict(other_config or {}),
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
    }
    try:
        vdi_ref = client.call("VDI.create", fields)
    except XapiFailure as error:
        if error.code == "SR_FULL":
            raise _sr_full(error, sr, chain.size) from None
        raise RestoreError(f"the pool could not create the disk: {error}") from None
    # The next blocks are read from the chain while this one is sent.
    chunks = read_ahead(synthetic, depth=2)
    try:
        with progress.subtask(label, kind="restore", total=synthetic.size) as step:
            client.import_stream(
                "/import_raw_vdi",
                {"vdi": vdi_ref, "format": "vhd"},
                _counted(chunks, step),
                synthetic.size,
                label=f"xoweb {label}",
            )
        return vdi_ref, client.call("VDI.get_uuid", vdi_ref)
    except BaseException as error:
        destroy_vdis(client, [vdi_ref])
        if isinstance(error, XapiFailure) and error.code == "SR_FULL":
            raise _sr_full(error, sr, chain.size) from None
        if isinstance(error, XapiError):
            raise RestoreError(f"the import of the disk failed: {error}") from None
        raise
    finally:
        chunks.close()
