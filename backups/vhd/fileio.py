"""The I/O seam of the code that changes VHD files: the writer, the merge and its state file.

Every write, flush, truncate, rename and unlink that ``VhdWriter``, ``merge`` and
``MergeState`` make goes through one :class:`VhdIO` object, :data:`OS_IO` unless the caller
passes another. The backup engine passes its remote's file system (``backups.engine.fsio``),
which a test wraps to record every operation and replay the states a power loss could leave
(docs/maintenance.md §6). Reads stay plain ``os.pread`` on the reader's own descriptor: they
change nothing.

The methods call the ``os`` functions at call time (``os.pwrite``, not a bound copy), so a test
that patches ``os`` still sees every call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol


class NewFile(Protocol):
    """A file created for writing, written front to back."""

    path: Path

    def write(self, *chunks: bytes | memoryview) -> int: ...

    def skip(self, length: int) -> None:
        """Leave the next ``length`` bytes unwritten: a hole, read back as zeros, that takes no
        room on a file system with sparse files. The file's size covers it from the next write
        or fsync on."""
        ...

    def fsync(self) -> None: ...

    def close(self) -> None: ...


class RwFile(Protocol):
    """An existing file opened for reading and writing in place."""

    path: Path

    def pread(self, length: int, offset: int) -> bytes: ...

    def pwrite(self, data: bytes | memoryview, offset: int) -> int: ...

    def pwritev(self, chunks: list[bytes | memoryview], offset: int) -> int: ...

    def datasync(self) -> None: ...

    def truncate(self, size: int) -> None: ...

    def size(self) -> int: ...

    def inode(self) -> int: ...

    def close(self) -> None: ...


class VhdIO(Protocol):
    def create(self, path: Path) -> NewFile:
        """A new file opened for writing; ``FileExistsError`` if ``path`` exists."""
        ...

    def open_rw(self, path: Path) -> RwFile: ...

    def rename(self, source: Path, target: Path) -> None:
        """Atomic; replaces a file ``target``."""
        ...

    def unlink(self, path: Path) -> None:
        """``FileNotFoundError`` when missing."""
        ...

    def fsync_dir(self, path: Path) -> None:
        """Make the names created, renamed or removed in ``path`` durable."""
        ...


def write_all(fd: int, chunks: list[memoryview]) -> int:
    """``writev`` every byte of ``chunks`` (a short write is legal: write the rest)."""
    total = written = sum(len(view) for view in chunks)
    done = os.writev(fd, chunks)
    while done < total:
        skip, rest = done, []
        for view in chunks:
            if skip >= len(view):
                skip -= len(view)
                continue
            rest.append(view[skip:])
            skip = 0
        chunks, total = rest, total - done
        done = os.writev(fd, chunks)
    return written


class OsNewFile:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def write(self, *chunks: bytes | memoryview) -> int:
        return write_all(self.fd, [memoryview(chunk).cast("B") for chunk in chunks])

    def skip(self, length: int) -> None:
        os.lseek(self.fd, length, os.SEEK_CUR)

    def fsync(self) -> None:
        # A seek alone does not grow the file: when it ends in a hole, its size must cover it.
        end = os.lseek(self.fd, 0, os.SEEK_CUR)
        if os.fstat(self.fd).st_size < end:
            os.ftruncate(self.fd, end)
        os.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class OsRwFile:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd

    def pread(self, length: int, offset: int) -> bytes:
        return os.pread(self.fd, length, offset)

    def pwrite(self, data: bytes | memoryview, offset: int) -> int:
        return os.pwrite(self.fd, data, offset)

    def pwritev(self, chunks: list[bytes | memoryview], offset: int) -> int:
        return os.pwritev(self.fd, chunks, offset)

    def datasync(self) -> None:
        os.fdatasync(self.fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self.fd, size)

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def inode(self) -> int:
        return os.fstat(self.fd).st_ino

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)


class OsVhdIO:
    """The operating system's files."""

    def create(self, path: Path) -> OsNewFile:
        return OsNewFile(Path(path), os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))

    def open_rw(self, path: Path) -> OsRwFile:
        return OsRwFile(Path(path), os.open(path, os.O_RDWR))

    def rename(self, source: Path, target: Path) -> None:
        Path(source).replace(target)

    def unlink(self, path: Path) -> None:
        Path(path).unlink()

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


OS_IO: VhdIO = OsVhdIO()


def unlink_quietly(io: VhdIO, path: Path) -> bool:
    """Unlink ``path`` if it exists; True when something was removed."""
    try:
        io.unlink(path)
    except FileNotFoundError:
        return False
    return True
