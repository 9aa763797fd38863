"""Power loss, not only a killed process: record what a piece of code asks of the file system,
then build every state a crash could leave on the disk (the ALICE and CrashMonkey method).

``RecordingFs`` is a ``backups.engine.fsio.FileSystem`` (and so the ``backups.vhd`` I/O seam)
that does each operation for real and records it against inode numbers of its own: file
writes and truncates, file flushes (``fsync``/``fdatasync``), names created, renamed and
removed in a folder, and folder flushes. ``Trace.crash_states()`` then yields the trees a
power loss after any operation could leave, under this model of a disk:

* an operation is *durable* once a later flush covers it: a file's writes and truncates by a
  flush of that file; a name's creation, rename or removal by a flush of its folder (a rename
  between two folders by a flush of both);
* every operation not yet durable may be lost or kept, independently of the others (no order
  among them is promised), and a kept write spanning several 4 KiB blocks may also be *torn*:
  only its first half, in whole blocks, reached the disk (a 4 KiB block — a page, a file
  system block, the physical sector of today's drives — is written whole or not at all);
* a rename is atomic: the name points at the old file or the new one, never at neither.

For each crash point every subset of the pending operations is built when there are at most
``exhaustive`` of them; beyond that, the subsets that matter for ordering bugs: none, all,
each one alone lost, each one alone kept, each prefix; plus each pending write torn. States
that give the same tree are built once.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backups.engine.fsio import RealFile, RealFileSystem
from backups.vhd.fileio import OsRwFile

WRITE, TRUNCATE, FSYNC, LINK, UNLINK, RENAME, FSYNC_DIR = (
    "write",
    "truncate",
    "fsync",
    "link",
    "unlink",
    "rename",
    "fsync_dir",
)


@dataclass(frozen=True)
class Op:
    kind: str
    ino: int  # the file written or flushed; the file or folder named, moved or removed
    folder: int = -1  # link, unlink, rename (source); fsync_dir
    name: str = ""
    folder2: int = -1  # rename target
    name2: str = ""
    offset: int = 0
    data: bytes = b""
    size: int = 0  # truncate
    is_dir: bool = False  # link of a new folder

    def __str__(self) -> str:
        if self.kind == WRITE:
            return f"write #{self.ino} {len(self.data)}@{self.offset}"
        if self.kind in (LINK, UNLINK):
            return f"{self.kind} {self.name} (#{self.ino}) in #{self.folder}"
        if self.kind == RENAME:
            return f"rename {self.name} → {self.name2} (#{self.ino})"
        return f"{self.kind} #{self.ino}"


#: What the disk writes whole or not at all.
ATOMIC = 4096


def units(op: Op) -> int:
    """How many atomic units a write touches."""
    return (op.offset + len(op.data) - 1) // ATOMIC - op.offset // ATOMIC + 1


def tear(op: Op) -> int:
    """How many bytes of a torn write reach the disk: its first half, in whole units."""
    boundary = (op.offset // ATOMIC + units(op) // 2) * ATOMIC
    return boundary - op.offset


@dataclass
class Tree:
    """A file system as inodes: folders map names to inodes, files hold bytes."""

    folders: dict[int, dict[str, int]] = field(default_factory=dict)
    files: dict[int, bytearray] = field(default_factory=dict)
    shared: set[int] = field(default_factory=set)  # contents shared with another tree

    def copy(self) -> Tree:
        """A copy whose file contents are copied when first written (copy on write)."""
        return Tree(
            {ino: dict(entries) for ino, entries in self.folders.items()},
            dict(self.files),
            set(self.files),
        )

    def _own(self, ino: int) -> bytearray:
        if ino in self.shared:
            self.files[ino] = bytearray(self.files[ino])
            self.shared.discard(ino)
        return self.files.setdefault(ino, bytearray())

    def apply(self, op: Op, torn: bool = False) -> None:
        if op.kind == WRITE:
            data = op.data[: tear(op)] if torn else op.data
            content = self._own(op.ino)
            end = op.offset + len(data)
            if len(content) < end:
                content.extend(bytes(end - len(content)))
            content[op.offset : end] = data
        elif op.kind == TRUNCATE:
            content = self._own(op.ino)
            del content[op.size :]
            content.extend(bytes(op.size - len(content)))
        elif op.kind == LINK:
            self.folders.setdefault(op.folder, {})[op.name] = op.ino
            if op.is_dir:
                self.folders.setdefault(op.ino, {})
            else:
                self.files.setdefault(op.ino, bytearray())
        elif op.kind == UNLINK:
            entries = self.folders.get(op.folder, {})
            if entries.get(op.name) == op.ino:
                del entries[op.name]
        elif op.kind == RENAME:
            source = self.folders.get(op.folder, {})
            if source.get(op.name) == op.ino:
                del source[op.name]
            self.folders.setdefault(op.folder2, {})[op.name2] = op.ino

    def walk(self, ino: int = 0, prefix: str = "") -> Iterator[tuple[str, int]]:
        for name, child in sorted(self.folders.get(ino, {}).items()):
            path = f"{prefix}{name}"
            yield path, child
            if child in self.folders:
                yield from self.walk(child, path + "/")

    def digest(self) -> str:
        digest = hashlib.sha256()
        for path, ino in self.walk():
            digest.update(path.encode() + b"\0")
            if ino in self.folders:
                digest.update(b"/\0")
            else:
                digest.update(hashlib.sha256(self.files.get(ino, b"")).digest())
        return digest.hexdigest()

    def materialize(self, root: Path) -> None:
        """Write the tree under ``root`` (mtimes in the past: every lock lease long over)."""
        root.mkdir(parents=True)
        made = [root]
        for path, ino in self.walk():
            target = root / path
            if ino in self.folders:
                target.mkdir()
                made.append(target)
            else:
                target.write_bytes(self.files.get(ino, b""))
                os.utime(target, (1, 1))
        for folder in reversed(made):
            os.utime(folder, (1, 1))


def scan(root: Path) -> tuple[Tree, dict[Path, int]]:
    """The tree under ``root`` as it is now (taken as durable), and each path's inode."""
    tree = Tree(folders={0: {}})
    inodes = {root: 0}
    counter = itertools.count(1)
    for folder, dirs, files in os.walk(root):
        here = inodes[Path(folder)]
        for name in sorted(dirs):
            ino = next(counter)
            tree.folders[here][name] = ino
            tree.folders[ino] = {}
            inodes[Path(folder) / name] = ino
        for name in sorted(files):
            ino = next(counter)
            tree.folders[here][name] = ino
            tree.files[ino] = bytearray((Path(folder) / name).read_bytes())
            inodes[Path(folder) / name] = ino
    return tree, inodes


class RecordingFs(RealFileSystem):
    """The operating system's files, every change recorded as an :class:`Op`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.initial, self.inodes = scan(self.root)
        self.ops: list[Op] = []
        self._next = itertools.count(max(self.inodes.values()) + 1)
        self.recording = True

    def _record(self, op: Op) -> None:
        if self.recording:
            self.ops.append(op)

    def _ino(self, path: Path) -> int:
        try:
            return self.inodes[Path(path)]
        except KeyError:
            raise AssertionError(
                f"{path} was not made through the seam (or is outside the root)"
            ) from None

    def _folder(self, path: Path) -> tuple[int, str]:
        path = Path(path)
        return self._ino(path.parent), path.name

    # -- changes ----------------------------------------------------------------------------

    def create(self, path):
        real = super().create(path)
        folder, name = self._folder(path)
        ino = next(self._next)
        self.inodes[Path(path)] = ino
        self._record(Op(LINK, ino, folder, name))
        return _NewFile(self, ino, real)

    def open_rw(self, path):
        real = super().open_rw(path)
        return _RwFile(self, self._ino(path), real)

    def rename(self, source, target):
        super().rename(source, target)
        ino = self._ino(source)
        folder, name = self._folder(source)
        folder2, name2 = self._folder(target)
        assert not Path(target).is_dir(), "the seam never renames folders"
        del self.inodes[Path(source)]
        self.inodes[Path(target)] = ino
        self._record(Op(RENAME, ino, folder, name, folder2, name2))

    def unlink(self, path):
        super().unlink(path)
        folder, name = self._folder(path)
        self._record(Op(UNLINK, self.inodes.pop(Path(path)), folder, name))

    def mkdir(self, path):
        super().mkdir(path)
        folder, name = self._folder(path)
        ino = next(self._next)
        self.inodes[Path(path)] = ino
        self._record(Op(LINK, ino, folder, name, is_dir=True))

    def rmdir(self, path):
        super().rmdir(path)
        folder, name = self._folder(path)
        self._record(Op(UNLINK, self.inodes.pop(Path(path)), folder, name))

    def fsync_dir(self, path):
        super().fsync_dir(path)
        self._record(Op(FSYNC_DIR, self._ino(path), self._ino(path)))

    # -- the trace --------------------------------------------------------------------------

    def trace(self) -> Trace:
        trace = Trace(self.initial, list(self.ops))
        final = trace.state(len(trace.ops), keep_all=True)
        real, _ = scan(self.root)
        assert final.digest() == real.digest(), (
            "the files changed outside the I/O seam: the recorded operations do not give the "
            "tree on disk"
        )
        return trace


class _NewFile:
    def __init__(self, fs: RecordingFs, ino: int, real: RealFile) -> None:
        self.fs, self.ino, self.real, self.path = fs, ino, real, real.path
        self.offset = 0

    def write(self, *chunks) -> int:
        data = b"".join(bytes(memoryview(chunk).cast("B")) for chunk in chunks)
        written = self.real.write(data)
        self.fs._record(Op(WRITE, self.ino, offset=self.offset, data=data))
        self.offset += written
        return written

    def skip(self, length: int) -> None:
        # What a hole reads as; the model tracks contents, not the room they take.
        self.write(bytes(length))

    def fsync(self) -> None:
        self.real.fsync()
        self.fs._record(Op(FSYNC, self.ino))

    def close(self) -> None:
        self.real.close()


class _RwFile:
    def __init__(self, fs: RecordingFs, ino: int, real: OsRwFile) -> None:
        self.fs, self.ino, self.real, self.path = fs, ino, real, real.path

    def pread(self, length, offset):
        return self.real.pread(length, offset)

    def pwrite(self, data, offset):
        data = bytes(data)
        written = self.real.pwrite(data, offset)
        self.fs._record(Op(WRITE, self.ino, offset=offset, data=data))
        return written

    def pwritev(self, chunks, offset):
        return self.pwrite(b"".join(bytes(chunk) for chunk in chunks), offset)

    def datasync(self):
        self.real.datasync()
        self.fs._record(Op(FSYNC, self.ino))

    def truncate(self, size):
        self.real.truncate(size)
        self.fs._record(Op(TRUNCATE, self.ino, size=size))

    def size(self):
        return self.real.size()

    def inode(self):
        return self.real.inode()

    def close(self):
        self.real.close()


@dataclass(frozen=True)
class CrashState:
    how: str  # which crash point, which pending operations kept
    tree: Tree
    returned: bool  # the crash came after the code under test had returned


@dataclass
class Trace:
    initial: Tree
    ops: list[Op]

    def pending(self, crash: int) -> list[int]:
        """Indices of the operations before ``crash`` that no flush made durable yet."""
        last_fsync: dict[int, int] = {}
        last_dir: dict[int, int] = {}
        for index, op in enumerate(self.ops[:crash]):
            if op.kind == FSYNC:
                last_fsync[op.ino] = index
            elif op.kind == FSYNC_DIR:
                last_dir[op.ino] = index
        out = []
        for index, op in enumerate(self.ops[:crash]):
            if op.kind in (WRITE, TRUNCATE):
                durable = index < last_fsync.get(op.ino, -1)
            elif op.kind in (LINK, UNLINK):
                durable = index < last_dir.get(op.folder, -1)
            elif op.kind == RENAME:
                durable = index < min(last_dir.get(op.folder, -1), last_dir.get(op.folder2, -1))
            else:
                continue
            if not durable:
                out.append(index)
        return out

    def state(
        self,
        crash: int,
        keep: frozenset[int] = frozenset(),
        torn: int = -1,
        *,
        keep_all: bool = False,
    ) -> Tree:
        """The tree after a crash following ``crash`` operations, keeping of the pending ones
        those in ``keep`` (all with ``keep_all``), ``torn`` kept half."""
        pending = set() if keep_all else set(self.pending(crash))
        tree = self.initial.copy()
        for index, op in enumerate(self.ops[:crash]):
            if op.kind in (FSYNC, FSYNC_DIR):
                continue
            if index in pending and index not in keep and index != torn:
                continue
            tree.apply(op, torn=index == torn)
        return tree

    def crash_states(self, exhaustive: int = 6) -> Iterator[CrashState]:
        """Every distinct tree a crash could leave, with a label saying how it was made; the
        states of a crash after the last operation (the code had returned) are all given, so
        that a test can check what the code promised once it returned is on the disk."""
        seen: set[tuple[str, bool]] = set()
        for crash in range(len(self.ops) + 1):
            pending = self.pending(crash)
            choices: list[tuple[str, frozenset[int], int]] = []
            if len(pending) <= exhaustive:
                for count in range(len(pending) + 1):
                    for kept in itertools.combinations(pending, count):
                        choices.append((f"kept {list(kept)}", frozenset(kept), -1))
            else:
                every = frozenset(pending)
                choices.append(("kept none", frozenset(), -1))
                choices.append(("kept all", every, -1))
                for index in pending:
                    choices.append((f"lost {index}", every - {index}, -1))
                    choices.append((f"kept {index} alone", frozenset({index}), -1))
                for count in range(1, len(pending)):
                    choices.append((f"kept the first {count}", frozenset(pending[:count]), -1))
            for index in pending:
                if self.ops[index].kind == WRITE and units(self.ops[index]) > 1:
                    rest = frozenset(pending) - {index}
                    choices.append((f"torn {index}, others kept", rest, index))
                    choices.append((f"torn {index} alone", frozenset(), index))
            returned = crash == len(self.ops)
            for label, kept, torn in choices:
                tree = self.state(crash, kept, torn)
                key = (tree.digest(), returned)
                if key in seen:
                    continue
                seen.add(key)
                how = f"crash after op {crash} ({self.describe(crash)}), {label}"
                yield CrashState(how, tree, returned)

    def describe(self, crash: int) -> str:
        return str(self.ops[crash - 1]) if crash else "before any"


class _NoSyncFile(RealFile):
    def fsync(self) -> None:
        pass


class _NoSyncRwFile(OsRwFile):
    def datasync(self) -> None:
        pass


class NoSyncFs(RealFileSystem):
    """The operating system's files without flushes: for recovering a rebuilt crash state,
    which is thrown away after its checks (flushes there would only slow the replay)."""

    def create(self, path):
        real = super().create(path)
        return _NoSyncFile(real.path, real.fd)

    def open_rw(self, path):
        real = super().open_rw(path)
        return _NoSyncRwFile(real.path, real.fd)

    def fsync_dir(self, path) -> None:
        pass
