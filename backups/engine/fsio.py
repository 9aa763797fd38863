"""The I/O seam: every change the engine makes to a remote's files goes through a FileSystem.

Writes, fsyncs, renames, unlinks, mkdirs, rmdirs and directory fsyncs of the remote adapter,
the lock, the disk transfers, the merges and the clean pass are calls on one
:class:`FileSystem` object, so that a test can record them, stop at any of them, and replay
every state a power loss could leave (docs/maintenance.md §6). A ``FileSystem`` is also the
``backups.vhd`` I/O seam (``backups.vhd.fileio.VhdIO``: ``create``, ``open_rw``, ``rename``,
``unlink``, ``fsync_dir``), so the VHD merges the engine runs go through it too.
:class:`RealFileSystem` is the operating system. Reads go through it where the engine reads its
own files (listings, metadata); VHD files are read by ``backups.vhd`` directly, which reads
with its own descriptors and writes only through the seam.

Errors are the operating system's ``OSError``; the remote adapter turns them into messages
that name the remote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol

from backups.vhd.fileio import NewFile, OsNewFile, OsVhdIO, RwFile

#: A file the adapter creates: the VHD library's new file (write, skip, fsync, close).
WritableFile = NewFile


class FileSystem(Protocol):
    def create(self, path: Path) -> WritableFile:
        """A new file, opened for writing; fails if ``path`` exists."""
        ...

    def open_rw(self, path: Path) -> RwFile:
        """An existing file, to change in place (a merge's parent)."""
        ...

    def read_bytes(self, path: Path) -> bytes: ...

    def rename(self, source: Path, target: Path) -> None:
        """Atomic; replaces a file ``target``."""
        ...

    def unlink(self, path: Path) -> None: ...

    def mkdir(self, path: Path) -> None:
        """One directory; fails if it exists (the lock relies on it)."""
        ...

    def rmdir(self, path: Path) -> None:
        """An empty directory only (the lock relies on it)."""
        ...

    def fsync_dir(self, path: Path) -> None:
        """Make the names created, renamed or removed in ``path`` durable."""
        ...

    def listdir(self, path: Path) -> list[str]: ...

    def exists(self, path: Path) -> bool: ...

    def mtime(self, path: Path) -> float: ...

    def disk_usage(self, path: Path) -> tuple[int, int, int]:
        """(total, used, free) bytes of the filesystem holding ``path``."""
        ...


#: A new file written with ``writev`` (no Python buffer: one copy less): the VHD library's.
RealFile = OsNewFile


class RealFileSystem(OsVhdIO):
    """The operating system's files: the VHD library's, and what the remote adapter adds."""

    def read_bytes(self, path: Path) -> bytes:
        return Path(path).read_bytes()

    def mkdir(self, path: Path) -> None:
        Path(path).mkdir(0o750)

    def rmdir(self, path: Path) -> None:
        Path(path).rmdir()

    def listdir(self, path: Path) -> list[str]:
        return [entry.name for entry in Path(path).iterdir()]

    def exists(self, path: Path) -> bool:
        return os.path.lexists(path)

    def mtime(self, path: Path) -> float:
        return Path(path).stat().st_mtime

    def disk_usage(self, path: Path) -> tuple[int, int, int]:
        usage = shutil.disk_usage(path)
        return usage.total, usage.used, usage.free
