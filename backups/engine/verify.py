"""Verification: does each backup on a remote restore? (docs/verification.md §1).

For each VM folder, under the VM's lock (a merge rewrites files in place, a check must not read
one half-merged):

1. every metadata file (``<ts>.json``) parses as a backup;
2. every VHD it names exists, and passes ``backups.vhd``'s check with its whole chain — errors
   only: a warning is something blktap refuses in a file that reads right (docs/vhd.md §10);
3. ``deep``: every file is read whole and its SHA-256 compared with the one its metadata
   recorded when it was written (bit rot, a flipped byte, an edit), docs/remote-format.md §2.

Each file is read once however many chains share it: a pool of threads hashes one file each
(``hashlib`` releases the GIL, the kernel reads ahead), and the same thread checks the file's
structure right after, when its pages are still in the cache. Nothing is written but the lock.

The outcome is a :class:`VerifyReport` (``verify_report.py``): a :class:`FileReport` per file
(its own errors, its link to its parent, its content), a :class:`BackupReport` per metadata file
(its own problems and its disks' chains). A backup fails when it or any file of its chains does.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from backups import vhd

from . import layout
from .errors import LockHeld, MetadataError, RemoteError
from .metadata import entry_from_metadata
from .progress import NullProgress, Progress
from .remote import RemoteAdapter
from .values import BackupEntry
from .verify_report import BackupReport, Content, FileReport, VerifyReport

#: Bytes read per ``readinto`` when hashing: large enough that the hash, not the call, costs.
READ_CHUNK = 4 * 2**20
#: How often the calling thread reports progress while the pool hashes.
PROGRESS_SECONDS = 0.5


def verify_remote(
    remote: RemoteAdapter,
    *,
    vm_uuids: Iterable[str] | None = None,
    deep: bool = False,
    progress: Progress | None = None,
    holder: str = "verification",
    lock: bool = True,
    lock_lease: float = 60.0,
    lock_heartbeat: float = 10.0,
    clock: Callable[[], float] = time.time,
    now: float | None = None,
    workers: int | None = None,
) -> VerifyReport:
    """Verify the backups of ``vm_uuids`` (default: every VM folder) on ``remote``.

    A VM whose folder is locked by a live process (a backup, a merge) is not checked and is
    listed in ``skipped`` with the holder; the remote's own failures raise ``RemoteError``.
    ``now`` (a unix time) is what VHD time stamps are compared with.
    """
    progress = progress or NullProgress()
    started = time.monotonic()
    report = VerifyReport(remote.remote_id, remote.name, deep)
    vms = list(vm_uuids) if vm_uuids is not None else remote.list_vms()
    # One thread more than cores: while one waits for the disk, the others hash.
    workers = workers or min(8, (os.cpu_count() or 1) + 1)
    kind = "deep check (every file read, SHA-256 compared)" if deep else "check"
    meter = _Meter()
    progress.info(f"{kind} of {len(vms)} VM folder(s) on {remote}")
    # A few VM folders are open (locked, their files given to the pool) at once, so that the
    # threads never wait for one folder's last large file: the oldest is finished (its chains
    # walked, its lock released) when the window is full, and every one at the end.
    window: deque[tuple[str, ExitStack, _VmCheck]] = deque()

    def finish_oldest() -> None:
        vm_uuid, held, check = window.popleft()
        with held:
            check.finish(progress)
        report.vms.append(vm_uuid)

    with ThreadPoolExecutor(workers, thread_name_prefix="verify") as pool:
        try:
            for vm_uuid in vms:
                progress.check()
                held = ExitStack()
                try:
                    if lock:
                        held.enter_context(
                            remote.lock(
                                vm_uuid,
                                holder=holder,
                                lease=lock_lease,
                                heartbeat=lock_heartbeat,
                                clock=clock,
                            )
                        )
                except LockHeld as error:
                    report.skipped[vm_uuid] = f"not checked: {error}"
                    progress.warning(report.skipped[vm_uuid])
                    continue
                check = _VmCheck(remote, vm_uuid, report, pool, now, meter)
                try:
                    check.start()
                except BaseException:
                    held.close()
                    raise
                window.append((vm_uuid, held, check))
                if len(window) >= workers:
                    finish_oldest()
            while window:
                finish_oldest()
        finally:
            for _vm_uuid, held, check in window:  # a failure: stop reading, release the locks
                check.cancel()
                held.close()
    report.bytes_read = meter.hashed
    report.duration = time.monotonic() - started
    return report


@dataclass
class _Meter:
    """Bytes to cover and covered, over every VM folder of one verification (the progress),
    written by the pool's threads."""

    total: int = 0
    hashed: int = 0  # deep: bytes read and hashed
    checked: int = 0  # bytes of the files whose check is done
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, hashed: int = 0, checked: int = 0) -> None:
        with self.lock:
            self.hashed += hashed
            self.checked += checked


class _VmCheck:
    """The check of one VM folder (see the module docstring for the steps): :meth:`start`
    reads its metadata and gives its files to the pool; :meth:`finish` waits for them, then
    walks every chain."""

    def __init__(
        self,
        remote: RemoteAdapter,
        vm_uuid: str,
        report: VerifyReport,
        pool: ThreadPoolExecutor,
        now: float | None,
        meter: _Meter,
    ) -> None:
        self.remote = remote
        self.meter = meter
        self.vm_uuid = vm_uuid
        self.report = report
        self.pool = pool
        self.now = now
        self.checked: dict[Path, vhd.FileCheck] = {}
        self.backups: list[tuple[BackupReport, BackupEntry | None]] = []
        self.futures: set[Future] = set()

    def relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.remote.root).as_posix()
        except ValueError:
            return str(path)

    def words(self, text: str) -> str:
        """A finding's message without the remote's own folder (paths read from its root)."""
        return text.replace(f"{self.remote.root}/", "")

    def start(self) -> None:
        self.backups = self.read_metadata()
        files: dict[str, tuple[str, str]] = {}  # path → (sha256 recorded, by which metadata)
        for backup, entry in self.backups:
            for disk in entry.disks if entry else ():
                if not self.remote.path(disk.path).is_file():
                    backup.problems.append(
                        f"{disk.path}: missing (disk '{disk.vdi_name or disk.vdi_uuid}' of this "
                        "backup)"
                    )
                    backup.chains[disk.vdi_uuid] = []
                    continue
                recorded = files.get(disk.path)
                if recorded is None or (disk.sha256 and not recorded[0]):
                    files[disk.path] = (disk.sha256, backup.path)
        for path in files:
            try:
                self.meter.total += self.remote.path(path).stat().st_size
            except OSError:
                pass
        self.futures = {
            self.pool.submit(self.read_file, path, *recorded) for path, recorded in files.items()
        }

    def finish(self, progress: Progress) -> None:
        """Wait for the files (reporting progress from this thread: the progress object is
        not shared between threads), then walk every chain."""
        progress.update(total=self.meter.total)
        futures = self.futures
        while futures:
            done, futures = wait(futures, timeout=PROGRESS_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                future.result()
            meter = self.meter
            progress.update(done=meter.hashed if self.report.deep else meter.checked)
            progress.check()
        for backup, entry in self.backups:
            for disk in entry.disks if entry else ():
                if disk.vdi_uuid not in backup.chains:
                    backup.chains[disk.vdi_uuid] = self.chain(disk.path)
            self.report.backups.append(backup)

    def cancel(self) -> None:
        for future in self.futures:
            future.cancel()
        wait(self.futures)

    def read_metadata(self) -> list[tuple[BackupReport, BackupEntry | None]]:
        folder = layout.vm_folder(self.vm_uuid)
        try:
            names = sorted(self.remote.fs.listdir(self.remote.path(folder)))
        except FileNotFoundError:
            return []
        except OSError as error:
            raise self.remote.error(f"list {folder}", error) from None
        found = []
        for name in names:
            if not name.endswith(".json") or not layout.is_timestamp(name[:-5]):
                continue
            relpath = f"{folder}/{name}"
            backup = BackupReport(relpath, self.vm_uuid, name[:-5])
            entry = None
            try:
                entry = entry_from_metadata(relpath, self.remote.read_metadata(relpath))
                backup.vm_name = entry.vm_name
            except (MetadataError, RemoteError) as error:
                backup.problems.append(f"{relpath}: {self.words(str(error))}")
            found.append((backup, entry))
        return found

    def read_file(self, path: str, expected: str, expected_by: str) -> None:
        absolute = self.remote.path(path)
        file = FileReport(path, expected_sha256=expected, expected_by=expected_by)
        try:
            stat = absolute.stat()
            file.size, file.mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:
            pass
        if self.report.deep:
            self.hash_file(absolute, file)
        # Right after the hash the file's pages are in the cache: the check reads from there.
        result = vhd.check_one(absolute, now=self.now)
        self.checked[absolute] = result
        self.describe(result, file)
        self.report.files[path] = file
        self.meter.add(checked=file.size)

    def hash_file(self, absolute: Path, file: FileReport) -> None:
        digest = hashlib.sha256()
        buffer = bytearray(READ_CHUNK)
        view = memoryview(buffer)
        try:
            with open(absolute, "rb", buffering=0) as handle:
                os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while count := handle.readinto(buffer):
                    digest.update(view[:count])
                    self.meter.add(hashed=count)
        except OSError as error:
            file.content = Content.UNREADABLE
            file.content_problem = f"{file.path}: cannot be read whole: {error.strerror or error}"
            return
        file.sha256 = digest.hexdigest()
        if not file.expected_sha256:
            file.content = Content.NO_CHECKSUM
        elif file.sha256 == file.expected_sha256:
            file.content = Content.OK
        else:
            file.content = Content.MISMATCH
            file.content_problem = (
                f"{file.path}: its SHA-256 is {file.sha256[:16]}…, not the "
                f"{file.expected_sha256[:16]}… that {file.expected_by.rsplit('/', 1)[-1]} "
                "recorded when it was written: its bytes changed since (bit rot, or an edit)"
            )

    def describe(self, result: vhd.FileCheck, file: FileReport) -> None:
        for finding in result.findings:
            where = self.relative(finding.path)
            message = f"{where}: {self.words(finding.message)}"
            (file.errors if finding.is_error else file.warnings).append(message)
        if result.parent is not None:
            file.parent = self.relative(result.parent)

    def chain(self, path: str) -> list[str]:
        """The files of the chain ending in ``path``, newest first; files met there that no
        metadata names (a parent) are checked now and reported too."""
        absolute = self.remote.path(path)
        findings = vhd.check_chain(absolute, now=self.now, checked=self.checked)
        files: list[str] = []
        current: Path | None = absolute
        while current is not None and self.relative(current) not in files:
            relpath = self.relative(current)
            files.append(relpath)
            if relpath not in self.report.files:
                extra = FileReport(relpath)
                result = self.checked.get(current)
                if result is not None:
                    self.describe(result, extra)
                self.report.files[relpath] = extra
            result = self.checked.get(current)
            current = result.parent if result is not None and result.differencing else None
        # A loop is reported on the chain, not on one file: keep it with the newest.
        loops = [f for f in vhd.errors(findings) if f.kind == "parent" and "loop" in f.message]
        newest = self.report.files[path]
        for finding in loops:
            message = f"{self.relative(finding.path)}: {self.words(finding.message)}"
            if message not in newest.errors:
                newest.errors.append(message)
        return files
