"""A FileSystem that records every operation and can run a hook before one (to interleave
another process at that exact point)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from backups.engine.fsio import RealFile, RealFileSystem


class RecordingFile(RealFile):
    def __init__(self, fs: RecordingFileSystem, path: Path, fd: int) -> None:
        super().__init__(path, fd)
        self.fs = fs

    def write(self, *chunks):
        self.fs.note("write", self.path)
        return super().write(*chunks)

    def fsync(self) -> None:
        self.fs.note("fsync", self.path)
        super().fsync()

    def close(self) -> None:
        if self.fd >= 0:
            self.fs.note("close", self.path)
        super().close()


class RecordingFileSystem(RealFileSystem):
    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.before: dict[str, Callable[[Path], None]] = {}

    def note(self, op: str, path: Path, *extra: Path) -> None:
        hook = self.before.pop(op, None)
        if hook is not None:
            hook(Path(path))
        self.log.append((op, " -> ".join(str(p) for p in (path, *extra))))

    def ops(self, *names: str) -> list[str]:
        return [op for op, _path in self.log if not names or op in names]

    def create(self, path):
        self.note("create", path)
        real = super().create(path)
        return RecordingFile(self, real.path, real.fd)

    def rename(self, source, target):
        self.note("rename", source, target)
        super().rename(source, target)

    def unlink(self, path):
        self.note("unlink", path)
        super().unlink(path)

    def mkdir(self, path):
        self.note("mkdir", path)
        super().mkdir(path)

    def rmdir(self, path):
        self.note("rmdir", path)
        super().rmdir(path)

    def fsync_dir(self, path):
        self.note("fsync_dir", path)
        super().fsync_dir(path)

    def listdir(self, path):
        self.note("listdir", path)
        return super().listdir(path)
