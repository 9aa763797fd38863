"""Fixtures for the engine tests: a simulated pool over HTTP, remotes in tmp folders, and the
checks every restore point must pass (exact bytes through our reader, libvhdi, and the pool).

The engine imports no Django; these tests need none either.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from backups.engine import (
    JobSettings,
    RemoteAdapter,
    ScheduleSettings,
    VmBackupOutcome,
    backup_vm,
    restore_disk_to_file,
    restore_disk_to_sr,
)
from pools.xapi import XapiClient

MIB = 2**20


class RecordingProgress:
    """A Progress that records what the engine reports; ``hooks[kind]`` runs at the first
    ``advance`` of a subtask of that kind (to inject a fault mid-transfer)."""

    def __init__(self, name: str = "root", kind: str = "", root: RecordingProgress | None = None):
        self.name = name
        self.kind = kind
        self.root = root or self
        self.total: float | None = None
        self.done = 0.0
        self.children: list[RecordingProgress] = []
        self.infos: list[str] = []
        self.warnings: list[str] = []
        self.hooks: dict[str, Callable[[RecordingProgress], None]] = {}
        self.cancel_after: float | None = None
        self._hooked = False

    def subtask(self, name: str, *, kind: str = "", total: float | None = None):
        child = RecordingProgress(name, kind, self.root)
        child.total = total
        self.children.append(child)

        @contextmanager
        def manager() -> Iterator[RecordingProgress]:
            yield child

        return manager()

    def advance(self, units: float) -> None:
        self.done += units
        hook = self.root.hooks.get(self.kind)
        if hook is not None and not self._hooked:
            self._hooked = True
            hook(self)
        limit = self.root.cancel_after
        if limit is not None and self.kind == "transfer" and self.done >= limit:
            raise Cancelled("cancelled by the test")

    def update(self, *, done: float | None = None, total: float | None = None) -> None:
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total

    def info(self, message: str) -> None:
        self.infos.append(message)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def check(self) -> None:
        pass

    def walk(self) -> Iterator[RecordingProgress]:
        yield self
        for child in self.children:
            yield from child.walk()

    def kinds(self) -> list[str]:
        return [node.kind for node in self.walk() if node.kind]


class Cancelled(Exception):
    """What a TaskReporter raises on a cancel, as far as the engine knows."""


@dataclass
class Pool:
    """A simulated pool and a logged-in client."""

    sim: Any
    client: XapiClient
    tmp: Path
    expected: dict[tuple[str, str], str] = field(default_factory=dict)  # (ts, vdi) → sha256

    def vm(self, name: str) -> dict[str, Any]:
        for record in self.client.get_all_records("VM").values():
            if record["name_label"] == name:
                return record
        raise KeyError(name)

    def make_vm(
        self, name: str, *, disks: int = 3, size: str = "16M", running: bool = False
    ) -> str:
        """A VM with ``disks`` disks with data; the last one named ``… [NOBAK]`` when disks == 3."""
        ref = self.sim.sim("vm_create", name, str(disks), size, "Running" if running else "Halted")
        record = self.client.call("VM.get_record", ref)
        for position, vdi in enumerate(self.disks(ref)):
            label = f"{name} disk {position}" + (" [NOBAK]" if disks == 3 and position == 2 else "")
            self.client.call("VDI.set_name_label", vdi, label)
            self.sim.sim("vdi_write_random", vdi, "3", str(position + 1))
        return record["uuid"]

    def disks(self, vm_ref: str) -> list[str]:
        """VDI refs of the VM's Disk VBDs, in device order."""
        out = []
        for vbd in self.client.call("VM.get_VBDs", vm_ref):
            record = self.client.call("VBD.get_record", vbd)
            if record["type"] == "Disk" and not record["empty"]:
                out.append((int(record["userdevice"]), record["VDI"]))
        return [vdi for _position, vdi in sorted(out)]

    def vm_ref(self, vm_uuid: str) -> str:
        return self.client.call("VM.get_by_uuid", vm_uuid)

    def vdi_ref(self, vdi_uuid: str) -> str:
        return self.client.call("VDI.get_by_uuid", vdi_uuid)

    def sha256(self, vdi_uuid: str) -> str:
        return self.sim.sim("vdi_sha256", self.vdi_ref(vdi_uuid))

    def write(self, vm_uuid: str, position: int, blocks: int = 2, seed: int = 0) -> None:
        vdi = self.disks(self.vm_ref(vm_uuid))[position]
        self.sim.sim("vdi_write_random", vdi, str(blocks), str(seed or blocks + position))

    def coalesce(self) -> None:
        """What the SR does between two nightly backups: coalesce the base copies left by the
        snapshots retention destroyed (docs/xapi.md §12.3)."""
        self.sim.sim("coalesce")

    def default_sr(self) -> str:
        pool = next(iter(self.client.get_all_records("pool").values()))
        return self.client.call("SR.get_uuid", pool["default_SR"])

    def our_snapshots(self, vm_uuid: str) -> list[dict[str, Any]]:
        """Every VM or VDI on the pool carrying a key of ours for this VM."""
        found = []
        for cls in ("VM", "VDI"):
            for record in self.client.get_all_records(cls).values():
                other = record.get("other_config", {})
                if other.get("xoweb:backup:vm") == vm_uuid or (
                    "xoweb:backup:pending" in other and record.get("is_a_snapshot")
                ):
                    found.append(record)
        return found

    def backup(
        self, vm_uuid: str, remotes: list[RemoteAdapter], *, coalesce: bool = True, **options: Any
    ) -> VmBackupOutcome:
        """``backup_vm`` with test defaults (the SR coalesced first, unless ``coalesce`` is
        false); records the pool's SHA-256 of each disk."""
        options.setdefault("job", job())
        options.setdefault("schedule", schedule())
        options.setdefault("progress", RecordingProgress())
        options.setdefault("holder", "engine tests")
        options.setdefault("lock_heartbeat", 0.5)
        options.setdefault("lock_lease", 5)
        if coalesce:
            self.coalesce()
        # Nothing writes to the disks during a test's backup: the live content is the
        # snapshot's (which snapshot retention may remove right after the backup).
        before = {
            self.client.call("VDI.get_uuid", vdi): self.sim.sim("vdi_sha256", vdi)
            for vdi in self.disks(self.vm_ref(vm_uuid))
        }
        outcome = backup_vm(self.client, vm_uuid, remotes=remotes, **options)
        if outcome.status in ("success", "partial"):
            for disk in outcome.disks:
                self.expected[(outcome.timestamp, disk.vdi_uuid)] = before[disk.vdi_uuid]
                if job_mode(options) == "delta":  # the snapshot stays (the next base)
                    assert self.sha256(disk.snapshot_vdi_uuid) == before[disk.vdi_uuid]
        return outcome


def job_mode(options: dict[str, Any]) -> str:
    return options["job"].mode


JOB_ID = "6a1c2f0e-0000-4000-8000-000000000001"
SCHEDULE_ID = "6a1c2f0e-0000-4000-8000-0000000000a1"


def job(**fields: Any) -> JobSettings:
    fields.setdefault("id", JOB_ID)
    fields.setdefault("name", "nightly")
    fields.setdefault("mode", "delta")
    return JobSettings(**fields)


def schedule(**fields: Any) -> ScheduleSettings:
    fields.setdefault("id", SCHEDULE_ID)
    fields.setdefault("name", "daily")
    # No retention unless a test asks for it: most tests count the backups they made.
    fields.setdefault("retention", 0)
    return ScheduleSettings(**fields)


@pytest.fixture
def pool(xapisim_factory, tmp_path) -> Iterator[Pool]:
    sim = xapisim_factory(vms=1, disk_size="16M")
    client = XapiClient(sim.url, "root", sim.password, timeout=20)
    client.login()
    yield Pool(sim, client, tmp_path)
    client.logout()


@pytest.fixture
def remotes(tmp_path) -> list[RemoteAdapter]:
    return [
        RemoteAdapter(tmp_path / "nas1", remote_id="r1", name="nas1"),
        RemoteAdapter(tmp_path / "nas2", remote_id="r2", name="nas2"),
    ]


def libvhdi_sha256(paths_newest_first: list[Path]) -> str:
    """SHA-256 of a chain's content as libvhdi reads it (exact for full-bitmap files)."""
    import pyvhdi

    handles = []
    for path in paths_newest_first:
        handle = pyvhdi.file()
        handle.open(str(path))
        handles.append(handle)
    for child, parent in itertools.pairwise(handles):
        child.set_parent(parent)
    newest = handles[0]
    digest = hashlib.sha256()
    offset, size = 0, newest.media_size
    while offset < size:
        length = min(8 * MIB, size - offset)
        digest.update(newest.read_buffer_at_offset(length, offset))
        offset += length
    for handle in handles:
        handle.close()
    return digest.hexdigest()


def chain_paths(remote: RemoteAdapter, relpath: str) -> list[Path]:
    from backups import vhd

    with vhd.open_chain(remote.path(relpath)) as chain:
        return [layer.path for layer in chain.layers]


def assert_restores_exactly(pool: Pool, remote: RemoteAdapter, *, to_sr: bool = True) -> int:
    """Every restore point of every VM on ``remote`` restores to a file and (``to_sr``) to an SR
    with exactly the SHA-256 the pool gave for the snapshot, and libvhdi agrees. Returns the
    number of disks checked."""
    checked = 0
    sr = pool.default_sr()
    for entry in remote.list_backups():
        for disk in entry.disks:
            expected = pool.expected[(entry.timestamp, disk.vdi_uuid)]
            target = pool.tmp / f"restore-{uuid.uuid4().hex}.raw"
            restored = restore_disk_to_file(remote, entry.path, disk.vdi_uuid, target)
            assert restored.sha256 == expected, (entry.path, disk.vdi_name)
            target.unlink()
            assert libvhdi_sha256(chain_paths(remote, disk.path)) == expected
            if to_sr:
                new_uuid = restore_disk_to_sr(pool.client, remote, entry.path, disk.vdi_uuid, sr)
                assert pool.sha256(new_uuid) == expected, (entry.path, disk.vdi_name, "to SR")
                pool.client.call("VDI.destroy", pool.vdi_ref(new_uuid))
            checked += 1
    return checked


def visible_files(remote: RemoteAdapter) -> set[str]:
    """Files under real names (not dot-named) on a remote, relative to its root."""
    return {
        path.relative_to(remote.root).as_posix()
        for path in remote.root.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(remote.root).parts)
        and ".lock" not in path.as_posix()
    }


def referenced_files(remote: RemoteAdapter) -> set[str]:
    """The metadata files and every VHD they name."""
    files = set()
    for entry in remote.list_backups():
        files.add(entry.path)
        files.update(disk.path for disk in entry.disks)
    return files


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i`` on every folder under ``path`` (what a read-only remote looks like to root:
    chmod does not stop root, an immutable folder does)."""
    folders = [path, *(p for p in path.rglob("*") if p.is_dir())]
    try:
        for folder in folders:
            subprocess.run(["chattr", "+i", str(folder)], check=True)
        yield
    finally:
        for folder in folders:
            subprocess.run(["chattr", "-i", str(folder)], check=False)
