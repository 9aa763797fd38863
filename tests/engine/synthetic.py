"""Backups written straight onto a remote, without a pool: the engine's layout, identities and
metadata, small blocks, and the exact content each backup must restore to.

For the maintenance tests (retention, merges, the clean pass, crash replays), which need many
backups of a few disks in milliseconds. ``SyntheticVm.backup()`` writes one backup as the
engine does: a VHD per disk (footer UUID = a new snapshot uuid, a delta's parent = the
previous file of the disk by name and UUID), then the metadata, last.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from backups import vhd
from backups.engine import RemoteAdapter, layout
from backups.engine.metadata import build_metadata

BLOCK = 64 * 1024  # small blocks: a VHD library detail, any power of two works
JOB_ID = "6a1c2f0e-0000-4000-8000-000000000001"
DAILY = "6a1c2f0e-0000-4000-8000-0000000000a1"
WEEKLY = "6a1c2f0e-0000-4000-8000-0000000000b2"


def content_sha256(path: Path) -> str:
    """SHA-256 of the disk a chain ending at ``path`` holds."""
    digest = hashlib.sha256()
    with vhd.open_chain(path) as chain:
        for block in chain.iter_raw():
            digest.update(block)
    return digest.hexdigest()


@dataclass
class SyntheticDisk:
    uuid: str
    size: int
    content: bytearray
    last: tuple[str, str] | None = None  # (file name, snapshot uuid) of the previous backup


@dataclass
class SyntheticVm:
    remote: RemoteAdapter
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    disks: list[SyntheticDisk] = field(default_factory=list)
    job_id: str = JOB_ID
    expected: dict[tuple[str, str], str] = field(default_factory=dict)  # (ts, vdi) → sha256
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    clock: float = 1_780_000_000.0  # 2026-05-28
    previous: dict[str, bytes] = field(default_factory=dict)  # disk uuid → last content
    block: int = BLOCK

    @classmethod
    def make(
        cls,
        remote: RemoteAdapter,
        *,
        disks: int = 1,
        blocks: int = 8,
        seed: int = 1,
        block: int = BLOCK,
    ):
        vm = cls(remote, rng=random.Random(seed), block=block)
        for _ in range(disks):
            size = blocks * block
            vm.disks.append(SyntheticDisk(str(uuid.uuid4()), size, bytearray(size)))
        return vm

    def write(self, blocks: int = 2) -> None:
        """Change ``blocks`` random blocks of every disk."""
        size = self.block
        for disk in self.disks:
            for index in self.rng.sample(range(disk.size // size), blocks):
                disk.content[index * size : (index + 1) * size] = self.rng.randbytes(size)

    def backup(
        self,
        *,
        full: bool = False,
        schedule: str = DAILY,
        at: float | None = None,
        changed: dict[int, set[int]] | None = None,
    ) -> str:
        """One backup of every disk (a full when ``full`` or the first); returns its ``<ts>``.

        A delta holds the blocks that differ from the previous backup's content.
        """
        if at is None:
            self.clock += 3600
            at = self.clock
        taken = [e.timestamp for e in self.remote.list_backups(self.uuid)]
        ts = layout.next_timestamp(at, taken)
        vbds, vdis, vhds, differencing, ours = {}, {}, {}, {}, {}
        size = 0
        for position, disk in enumerate(self.disks):
            snapshot = str(uuid.uuid4())
            ref = f"OpaqueRef:{snapshot}"
            relpath = layout.vhd_path(self.uuid, self.job_id, disk.uuid, ts)
            delta = disk.last is not None and not full
            previous = self.previous.get(disk.uuid) if delta else None
            size = self.block
            indices = [
                index
                for index in range(disk.size // size)
                if (previous is None and any(disk.content[index * size : (index + 1) * size]))
                or (
                    previous is not None
                    and disk.content[index * size : (index + 1) * size]
                    != previous[index * size : (index + 1) * size]
                )
            ]
            parent = (
                vhd.ParentLink(uuid.UUID(disk.last[1]), disk.last[0])
                if delta and disk.last
                else None
            )
            self.remote.ensure_folder(self.remote.path(relpath).parent)
            written = vhd.write_vhd(
                self.remote.path(relpath),
                {i: (None, bytes(disk.content[i * size : (i + 1) * size])) for i in indices},
                size=disk.size,
                uuid=uuid.UUID(snapshot),
                parent=parent,
                block_size=size,
                io=self.remote.fs,
            )
            hasher = hashlib.sha256(self.remote.path(relpath).read_bytes())
            vbds[f"OpaqueRef:vbd-{position}"] = {
                "VDI": ref,
                "userdevice": str(position),
                "type": "Disk",
            }
            vdis[ref] = {
                "uuid": snapshot,
                "name_label": f"disk {position}",
                "virtual_size": disk.size,
                "$snapshot_of$uuid": disk.uuid,
                "other_config": {"xo:base_delta_vdi": disk.last[1]} if delta and disk.last else {},
            }
            vhds[ref] = layout.vhd_in_vm(self.job_id, disk.uuid, ts)
            differencing[ref] = delta
            ours[ref] = {
                "sha256": hasher.hexdigest(),
                "mode": "delta" if delta else "full",
                "reason": "",
                "reasonCode": None,
                "size": written.size,
            }
            size += written.size
            disk.last = (f"{ts}.vhd", snapshot)
            self.previous[disk.uuid] = bytes(disk.content)
            self.expected[(ts, disk.uuid)] = hashlib.sha256(disk.content).hexdigest()
        data = build_metadata(
            job_id=self.job_id,
            job_mode="delta",
            schedule_id=schedule,
            timestamp=ts,
            vm={"uuid": self.uuid, "name_label": "synthetic"},
            vm_snapshot={"uuid": self.uuid, "name_label": "synthetic"},
            vbds=vbds,
            vdis=vdis,
            vifs={},
            vhds=vhds,
            differencing=differencing,
            disks=ours,
            size=size,
        )
        self.remote.write_metadata(self.uuid, f"{ts}.json", data)
        return ts


def restores_exactly(
    remote: RemoteAdapter,
    expected: dict[tuple[str, str], str],
    *,
    only: set[str] | None = None,
) -> int:
    """Every backup on ``remote`` (or those of ``only``, by ``<ts>``) restores each disk to its
    expected SHA-256; the count."""
    checked = 0
    for entry in remote.list_backups():
        if only is not None and entry.timestamp not in only:
            continue
        for disk in entry.disks:
            want = expected[(entry.timestamp, disk.vdi_uuid)]
            got = content_sha256(remote.path(disk.path))
            assert got == want, f"{disk.path} restores to {got}, expected {want}"
            checked += 1
    return checked


def vhd_files(remote: RemoteAdapter) -> list[str]:
    return sorted(path.relative_to(remote.root).as_posix() for path in remote.root.rglob("*.vhd"))


def dot_files(remote: RemoteAdapter) -> list[str]:
    """Names starting with a dot anywhere on the remote (temporary files, merge states)."""
    return sorted(path.relative_to(remote.root).as_posix() for path in remote.root.rglob(".*"))
