"""The remote adapter: the only code that touches a remote's files (docs/remote-format.md).

A remote is a local folder (a mounted NFS or SMB share is one). The adapter lists VM backups,
reads and writes metadata, writes files atomically, and hands out the lock of a VM folder.
Every change goes through the I/O seam (``fsio.FileSystem``); every ``OSError`` becomes a
``RemoteError`` naming the remote, the path and the reason.

Atomic files (:class:`AtomicFile`, docs/backup-engine.md §5 lists every fsync):
temporary name in the target's folder → write → fsync the file → validate the temporary
file → rename over the real name → fsync the folder. An abort unlinks the temporary file;
a crash leaves only a dot-named ``.partial`` file, which no listing takes for a backup.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import layout
from .errors import MetadataError, RemoteError
from .fsio import FileSystem, RealFileSystem, WritableFile
from .lock import VmLock
from .metadata import entry_from_metadata
from .values import BackupEntry

logger = logging.getLogger(__name__)

#: XO's listing cache; removed when a backup is added or deleted so that XO rebuilds it.
XO_CACHE = "cache.json.gz"


@dataclass(frozen=True)
class RemoteSpace:
    total: int
    used: int
    free: int


class AtomicFile:
    """A file written under a temporary name and committed by a rename (see the module doc).

    Use as a context manager (commit at the end of the block, abort on an exception), or call
    :meth:`commit` / :meth:`abort` yourself.
    """

    def __init__(
        self,
        adapter: RemoteAdapter,
        relpath: str,
        validate: Callable[[Path], None] | None = None,
    ) -> None:
        self.adapter = adapter
        self.relpath = relpath
        self.path = adapter.path(relpath)
        self.temp_path = self.path.with_name(layout.temporary_name(self.path.name))
        self.validate = validate
        self.size = 0
        self._file: WritableFile | None = None
        self.committed = False
        try:
            adapter.ensure_folder(self.path.parent)
            self._file = adapter.fs.create(self.temp_path)
        except OSError as error:
            raise adapter.error(f"create {self.relpath}", error) from None

    def write(self, *chunks: bytes | memoryview) -> None:
        if self._file is None:
            raise RemoteError(f"{self.relpath}: written after commit or abort")
        try:
            self.size += self._file.write(*chunks)
        except OSError as error:
            self.abort()
            raise self.adapter.error(f"write {self.relpath}", error) from None

    def skip(self, length: int) -> None:
        """Leave ``length`` bytes as a hole (zeros that take no room)."""
        if self._file is None:
            raise RemoteError(f"{self.relpath}: written after commit or abort")
        try:
            self._file.skip(length)
        except OSError as error:
            self.abort()
            raise self.adapter.error(f"write {self.relpath}", error) from None
        self.size += length

    def flush(self) -> None:
        """fsync the temporary file: its bytes are on the disk before anyone relies on them."""
        if self._file is None:
            return
        try:
            self._file.fsync()
        except OSError as error:
            self.abort()
            raise self.adapter.error(f"flush {self.relpath}", error) from None

    def commit(self) -> int:
        """fsync, close, validate, rename over the real name, fsync the folder; the size."""
        fs = self.adapter.fs
        try:
            self.flush()
            if self._file is not None:
                self._file.close()
                self._file = None
            if self.validate is not None:
                self.validate(self.temp_path)
            fs.rename(self.temp_path, self.path)
            self.committed = True
            fs.fsync_dir(self.path.parent)
        except OSError as error:
            self.abort()
            raise self.adapter.error(f"commit {self.relpath}", error) from None
        except BaseException:
            self.abort()
            raise
        return self.size

    def abort(self) -> None:
        """Drop the temporary file (safe to call twice; a remote that refuses is only logged:
        a ``.partial`` name is never taken for a backup)."""
        if self._file is not None:
            try:
                self._file.close()
            except OSError:
                pass
            self._file = None
        if self.committed:
            return
        try:
            self.adapter.fs.unlink(self.temp_path)
        except FileNotFoundError:
            pass
        except OSError as error:
            logger.warning("cannot remove %s on %s: %s", self.temp_path, self.adapter, error)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


class RemoteAdapter:
    """One remote: a folder holding XO's layout (``xo-vm-backups/…``)."""

    def __init__(
        self,
        root: str | Path,
        *,
        remote_id: str = "",
        name: str = "",
        fs: FileSystem | None = None,
    ) -> None:
        self.root = Path(root)
        self.remote_id = remote_id or str(self.root)
        self.name = name or str(self.root)
        self.fs: FileSystem = fs or RealFileSystem()

    def __repr__(self) -> str:
        return f"<RemoteAdapter {self.name!r} {self.root}>"

    def __str__(self) -> str:
        return f"remote '{self.name}'"

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def error(self, action: str, error: OSError) -> RemoteError:
        """A ``RemoteError`` for ``action`` that failed with ``error``."""
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return RemoteError(
            f"remote '{self.name}' ({self.root}): cannot {action}{where}: "
            f"{error.strerror or error}",
            remote_id=self.remote_id,
            remote_name=self.name,
        )

    def ensure_folder(self, folder: Path) -> None:
        """Create ``folder`` and its missing parents, fsyncing the parent of each one created:
        a file committed inside must not vanish with its folder's name in a crash."""
        missing = []
        while not self.fs.exists(folder) and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            try:
                self.fs.mkdir(created)
            except FileExistsError:
                continue
            self.fs.fsync_dir(created.parent)

    # -- health --------------------------------------------------------------------------

    def check(self) -> RemoteSpace:
        """The remote exists (or is created) and takes a real write: write, fsync, read back,
        delete a small file. Returns its space; ``RemoteError`` says what failed."""
        fs = self.fs
        probe = self.root / layout.temporary_name("xoweb-write-test")
        content = secrets.token_bytes(64)
        try:
            self.ensure_folder(self.root)
        except OSError as error:
            raise self.error("create the folder", error) from None
        try:
            handle = fs.create(probe)
            try:
                handle.write(content)
                handle.fsync()
            finally:
                handle.close()
            if fs.read_bytes(probe) != content:
                raise RemoteError(
                    f"remote '{self.name}' ({self.root}): a file written there reads back "
                    "different bytes",
                    remote_id=self.remote_id,
                    remote_name=self.name,
                )
            fs.unlink(probe)
        except OSError as error:
            raise self.error("write a test file (is it writable?)", error) from None
        return self.space()

    def space(self) -> RemoteSpace:
        try:
            return RemoteSpace(*self.fs.disk_usage(self.root))
        except OSError as error:
            raise self.error("read its free space", error) from None

    # -- listing and metadata ------------------------------------------------------------

    def _listdir(self, relpath: str) -> list[str]:
        try:
            return sorted(self.fs.listdir(self.path(relpath)))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self.error(f"list {relpath}", error) from None

    def list_vms(self) -> list[str]:
        """UUIDs of the VMs with a folder (XO ignores ``.lock`` and dot entries too)."""
        return [name for name in self._listdir(layout.BACKUP_ROOT) if layout.is_uuid(name)]

    def list_backups(self, vm_uuid: str | None = None) -> list[BackupEntry]:
        """Committed backups (a metadata file exists), oldest first.

        A metadata file that cannot be read or is not a backup is skipped with a warning in the
        log (issue 13's clean pass reports it).
        """
        entries = []
        for vm in [vm_uuid] if vm_uuid else self.list_vms():
            folder = layout.vm_folder(vm)
            for name in self._listdir(folder):
                if not name.endswith(".json") or not layout.is_timestamp(name[:-5]):
                    continue
                relpath = f"{folder}/{name}"
                try:
                    entries.append(entry_from_metadata(relpath, self.read_metadata(relpath)))
                except (MetadataError, RemoteError) as error:
                    logger.warning("skipping %s on %s: %s", relpath, self, error)
        return sorted(entries, key=lambda entry: (entry.timestamp, entry.vm_uuid))

    def read_metadata(self, entry_or_path: BackupEntry | str) -> dict[str, Any]:
        relpath = entry_or_path if isinstance(entry_or_path, str) else entry_or_path.path
        try:
            raw = self.fs.read_bytes(self.path(relpath))
        except OSError as error:
            raise self.error(f"read {relpath}", error) from None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise MetadataError(f"{relpath} on {self}: not valid JSON ({error})") from None

    def backup(self, relpath: str) -> BackupEntry:
        """The entry of one backup, by its metadata path."""
        return entry_from_metadata(relpath, self.read_metadata(relpath))

    def write_metadata(self, vm_uuid: str, name: str, data: dict[str, Any]) -> str:
        """Write ``xo-vm-backups/<vm>/<name>`` atomically: the commit point of a backup.

        The file is validated before the rename by reading it back as a backup entry; XO's
        listing cache of the folder is removed afterwards so that XO rebuilds it.
        """
        relpath = f"{layout.vm_folder(vm_uuid)}/{name}"
        body = json.dumps(data, indent=1, sort_keys=False).encode()

        def validate(temp: Path) -> None:
            entry_from_metadata(relpath, json.loads(self.fs.read_bytes(temp)))

        with self.atomic_file(relpath, validate) as handle:
            handle.write(body)
        self._forget_xo_cache(vm_uuid)
        return relpath

    def delete_backup(self, entry_or_path: BackupEntry | str) -> None:
        """Delete a backup's metadata (the backup is gone from then on). Its VHDs stay: issue
        13's clean pass merges or removes the files no metadata uses, as XO does."""
        relpath = entry_or_path if isinstance(entry_or_path, str) else entry_or_path.path
        vm_uuid, _name = layout.split_vm_path(relpath)
        try:
            self.fs.unlink(self.path(relpath))
            self.fs.fsync_dir(self.path(relpath).parent)
        except FileNotFoundError:
            return
        except OSError as error:
            raise self.error(f"delete {relpath}", error) from None
        self._forget_xo_cache(vm_uuid)

    def _forget_xo_cache(self, vm_uuid: str) -> None:
        cache = self.path(f"{layout.vm_folder(vm_uuid)}/{XO_CACHE}")
        try:
            self.fs.unlink(cache)
        except FileNotFoundError:
            pass
        except OSError as error:
            logger.warning("cannot remove XO's cache %s on %s: %s", cache, self, error)

    def disk_files(self, vm_uuid: str, job_id: str, vdi_uuid: str) -> list[str]:
        """The committed-looking names (``<ts>.vhd``) in a disk's chain folder."""
        folder = f"{layout.vm_folder(vm_uuid)}/{layout.disk_folder_in_vm(job_id, vdi_uuid)}"
        return [
            f"{folder}/{name}"
            for name in self._listdir(folder)
            if name.endswith(".vhd") and layout.is_timestamp(name[:-4])
        ]

    # -- writing -------------------------------------------------------------------------

    def atomic_file(
        self, relpath: str, validate: Callable[[Path], None] | None = None
    ) -> AtomicFile:
        return AtomicFile(self, relpath, validate)

    def lock(
        self,
        vm_uuid: str,
        *,
        holder: str,
        lease: float = 60.0,
        heartbeat: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> VmLock:
        """The lock of the VM's folder (not taken yet: use ``with``)."""
        try:
            self.ensure_folder(self.path(layout.BACKUP_ROOT))
        except OSError as error:
            raise self.error(f"create {layout.BACKUP_ROOT}", error) from None
        return VmLock(
            self.fs,
            self.path(layout.lock_path(vm_uuid)),
            holder=holder,
            lease=lease,
            heartbeat=heartbeat,
            clock=clock,
            remote_name=self.name,
        )
