"""After a restore: does the restored disk hold exactly the backup's bytes? (docs/backup-engine.md
§7). Both sides are read again and hashed, never taken from the restore's own counters:

* the backup: the raw content of the disk's VHD chain on the remote (every block from its
  newest owner, zeros where none has it) — what the backup says the disk was;
* the restored disk: on a pool, a ``format=raw`` export of the new VDI (the pool's own view of
  what it received); in a file, the file read back from the disk (a VHD through
  ``backups.vhd``, its raw content).

Equal SHA-256 on both sides: the restore gave back the backup exactly. Each read is a subtask
with progress (it costs a read of the disk on each side).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from backups import vhd
from pools.xapi import XapiClient, XapiFailure

from .errors import RestoreError
from .progress import NullProgress, Progress
from .remote import RemoteAdapter

CHUNK = 1 << 20


@dataclass(frozen=True)
class DiskCheck:
    """One disk's comparison: the backup's SHA-256 and the restored disk's."""

    vdi_uuid: str  # the backed-up (source) disk
    name: str
    backup_sha256: str
    restored_sha256: str
    restored: str  # where: the new VDI's uuid, or the file's path

    @property
    def equal(self) -> bool:
        return self.backup_sha256 == self.restored_sha256

    def as_dict(self) -> dict:
        return {
            "vdi": self.vdi_uuid,
            "name": self.name,
            "backup_sha256": self.backup_sha256,
            "restored_sha256": self.restored_sha256,
            "restored": self.restored,
            "equal": self.equal,
        }


def _hash(chunks: Iterable[bytes | memoryview], progress: Progress) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        progress.advance(len(chunk))
    return digest.hexdigest()


def backup_sha256(
    remote: RemoteAdapter, backup: str, vdi_uuid: str, progress: Progress | None = None
) -> tuple[str, str]:
    """(SHA-256 of the disk's raw content as ``backup`` holds it, the disk's name)."""
    progress = progress or NullProgress()
    entry = remote.backup(backup)
    try:
        disk = entry.disk(vdi_uuid)
    except KeyError as error:
        raise RestoreError(str(error.args[0])) from None
    try:
        chain = vhd.open_chain(remote.path(disk.path))
    except (OSError, vhd.VhdError) as error:
        raise RestoreError(f"the disk's VHD chain on {remote} cannot be read: {error}") from None
    with (
        chain,
        progress.subtask(
            f"read the backup of {disk.vdi_name or vdi_uuid} for its checksum",
            kind="verify",
            total=chain.size,
        ) as step,
    ):
        return _hash(chain.iter_raw(), step), disk.vdi_name


def vdi_sha256(client: XapiClient, vdi_uuid: str, progress: Progress | None = None) -> str:
    """SHA-256 of a VDI's raw content, read back from the pool (``/export_raw_vdi?format=raw``)."""
    progress = progress or NullProgress()
    try:
        ref = client.call("VDI.get_by_uuid", vdi_uuid)
    except XapiFailure as error:
        raise RestoreError(f"the restored disk {vdi_uuid} is not on the pool: {error}") from None
    size = int(client.call("VDI.get_virtual_size", ref))
    transfer = client.export_stream(
        "/export_raw_vdi",
        {"vdi": ref, "format": "raw"},
        label=f"xoweb read back the restored disk {vdi_uuid}",
    )
    with progress.subtask(
        f"read back the restored disk {vdi_uuid[:8]} from the pool", kind="verify", total=size
    ) as step:
        try:
            digest = _hash(transfer, step)
        finally:
            transfer.finish()
    return digest


def file_sha256(path: str | Path, fmt: str, progress: Progress | None = None) -> str:
    """SHA-256 of the disk's raw content in a restored file (``raw``, or ``vhd`` read through
    backups.vhd)."""
    progress = progress or NullProgress()
    path = Path(path)
    if fmt == "vhd":
        with (
            vhd.open_chain(path) as chain,
            progress.subtask(f"read back {path.name}", kind="verify", total=chain.size) as step,
        ):
            return _hash(chain.iter_raw(), step)
    with (
        path.open("rb") as handle,
        progress.subtask(
            f"read back {path.name}", kind="verify", total=path.stat().st_size
        ) as step,
    ):
        return _hash(iter(lambda: handle.read(CHUNK), b""), step)


def vm_disks_by_position(client: XapiClient, vm_uuid: str) -> dict[str, str]:
    """The disks of a (restored) VM: {userdevice: VDI uuid}."""
    vm = client.call("VM.get_by_uuid", vm_uuid)
    disks = {}
    for vbd in client.call("VM.get_VBDs", vm):
        record = client.call("VBD.get_record", vbd)
        if record.get("type") == "Disk" and not record.get("empty"):
            disks[str(record.get("userdevice"))] = client.call("VDI.get_uuid", record["VDI"])
    return disks


def backup_disks_by_position(remote: RemoteAdapter, backup: str) -> dict[str, str]:
    """The disks of a backup: {userdevice: source VDI uuid} (as the VM restore plugs them)."""
    data = remote.read_metadata(backup)
    entry = remote.backup(backup)
    by_ref = {disk.vdi_ref: disk.vdi_uuid for disk in entry.disks}
    return {
        str(vbd.get("userdevice")): by_ref[vbd["VDI"]]
        for vbd in (data.get("vbds") or {}).values()
        if vbd.get("type") == "Disk" and vbd.get("VDI") in by_ref
    }
