"""One lock per VM folder on a remote: a lease renewed by a heartbeat (docs/backup-engine.md §6).

The lock is the directory ``xo-vm-backups/<vm>.lock/`` (the name XO's proper-lockfile uses, so
XO and xoweb exclude each other). It holds one *lease file* whose name carries the holder's
token and the lease's end, in milliseconds of the injected clock::

    xo-vm-backups/<vm>.lock/lease.<token>.<expires ms>     content: who holds it (for people)

* **Acquire**: ``mkdir`` the directory (atomic: it fails when it exists), create the lease file,
  fsync it and the directory.
* **Heartbeat**: every ``heartbeat`` seconds, rename the lease file to a later end. The rename
  is a compare-and-swap on the old name: it fails if someone broke the lock meanwhile, and then
  the holder knows it lost the lock (``check()`` raises ``LockLost``).
* **Break** (only when the lease ended: the holder stopped beating): rename *that* lease file,
  by its exact name, out to a tombstone ``.<vm>.lock.<token>.broken``. Only one process can
  win that rename, and it loses to a holder that beat in between; a live lock is never broken.
  Then the empty directory is removed and acquired again with ``mkdir``.
* **Release**: the same rename of our own lease file, then ``rmdir`` (which only ever removes
  an empty directory, so it can never remove someone else's lock).
* **A dead holder on this machine**: a lease also says which process holds it (kernel boot id,
  pid namespace, pid and the process's start time: ``holder.py``). When that is this machine
  and namespace and no such process runs any more (killed, out of memory), the lock is broken
  at once, the same way, without waiting for its lease to end: a VM whose worker was killed is
  backed up again at once. Another machine's lease, or a holder that still runs, waits for its
  lease.

A lock directory without a lease file is another program's (XO's proper-lockfile keeps an empty
directory and touches its mtime) or one whose creator died before writing its lease: it is
held while its mtime is younger than the lease, by the wall clock as proper-lockfile does.
"""

from __future__ import annotations

import errno
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .errors import LockHeld, LockLost, RemoteError
from .fsio import FileSystem
from .holder import holder_is_gone, process_identity

logger = logging.getLogger(__name__)

LEASE_PREFIX = "lease."


def _lease_name(token: str, expires: float) -> str:
    return f"{LEASE_PREFIX}{token}.{int(expires * 1000)}"


def _parse_lease(name: str) -> tuple[str, float] | None:
    parts = name.split(".")
    if len(parts) != 3 or parts[0] + "." != LEASE_PREFIX or not parts[2].isdigit():
        return None
    return parts[1], int(parts[2]) / 1000


class VmLock:
    """The lock of one VM folder on one remote; use as a context manager (acquire/release).

    ``lease``: how long a beat keeps the lock alive; ``heartbeat``: seconds between beats
    (0: no thread, the caller beats with :meth:`beat`); ``clock``: the time leases are counted
    in (injected in tests); ``wall``: the clock of file mtimes, for foreign locks.
    """

    def __init__(
        self,
        fs: FileSystem,
        path: Path,
        *,
        holder: str,
        lease: float = 60.0,
        heartbeat: float = 10.0,
        clock: Callable[[], float] = time.time,
        wall: Callable[[], float] = time.time,
        remote_name: str = "",
    ) -> None:
        if heartbeat and heartbeat * 2 > lease:
            raise ValueError(
                f"the lock heartbeat ({heartbeat} s) must be at most half the lease ({lease} s), "
                "or one late beat loses the lock"
            )
        self.fs = fs
        self.path = Path(path)
        self.holder = holder
        self.lease = lease
        self.heartbeat = heartbeat
        self.clock = clock
        self.wall = wall
        self.remote_name = remote_name or str(self.path.parent.parent)
        self.token = secrets.token_hex(8)
        self.expires = 0.0
        self.lost = ""
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f"<VmLock {self.path} {self.holder!r} {'held' if self.held else 'free'}>"

    @property
    def _lease_path(self) -> Path:
        return self.path / _lease_name(self.token, self.expires)

    def _where(self) -> str:
        return f"the VM folder's lock {self.path} on remote '{self.remote_name}'"

    # -- acquire -----------------------------------------------------------------------------

    def acquire(self, *, wait: float = 0.0, poll: float = 1.0) -> VmLock:
        """Take the lock, breaking it first if its holder stopped beating; ``LockHeld`` if a
        live holder still has it after ``wait`` seconds (tried again every ``poll``).

        Steps: mkdir; if it exists, look at its lease (alive → ``LockHeld``; ended → break it
        by renaming that lease out, then mkdir again); write our lease; start the heartbeat.
        Waiting is for a holder that ends soon (a merge task, docs/maintenance.md §1): a
        backup that meets it waits its turn rather than failing.
        """
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._acquire()
            except LockHeld:
                if time.monotonic() + poll > deadline:
                    raise
                time.sleep(poll)

    def _acquire(self) -> VmLock:
        for _attempt in range(3):
            try:
                self.fs.mkdir(self.path)
            except FileExistsError:
                self._break_if_stale()
                continue
            except OSError as error:
                raise self._error("create", error) from None
            self._write_lease()
            self.held = True
            if self.heartbeat:
                self._thread = threading.Thread(
                    target=self._beat_forever, name=f"lock {self.path.name}", daemon=True
                )
                self._thread.start()
            return self
        raise LockHeld(f"{self._where()} changed hands while xoweb tried to take it; try again")

    def _write_lease(self) -> None:
        self.expires = self.clock() + self.lease
        content = {
            "holder": self.holder,
            "token": self.token,
            "host": socket.gethostname(),
            "lease": self.lease,
            **process_identity(),
        }
        try:
            handle = self.fs.create(self._lease_path)
            try:
                handle.write(json.dumps(content).encode())
                handle.fsync()
            finally:
                handle.close()
            self.fs.fsync_dir(self.path)
            self.fs.fsync_dir(self.path.parent)
        except OSError as error:
            self._remove_quietly()
            raise self._error("write the lease of", error) from None

    def _break_if_stale(self) -> None:
        """Raise ``LockHeld`` if the lock is alive; remove it if its holder stopped beating."""
        try:
            names = self.fs.listdir(self.path)
        except FileNotFoundError:
            return  # released meanwhile: try mkdir again
        except OSError as error:
            raise self._error("read", error) from None
        leases = [(name, parsed) for name in names if (parsed := _parse_lease(name))]
        if not leases:
            self._break_foreign()
            return
        now = self.clock()
        name, (token, expires) = max(leases, key=lambda item: item[1][1])
        if expires > now:
            if not holder_is_gone(self._content(name)):
                raise LockHeld(
                    f"{self._where()} is held by {self._describe(name)}, whose lease runs for "
                    f"another {expires - now:.0f} s (another backup, merge or check of this VM "
                    "is running; it is renewed while that process lives)"
                )
            logger.warning(
                "%s is held by %s, which no longer runs on this machine: broken before its "
                "lease ends",
                self._where(),
                self._describe(name),
            )
        for name, (token, _expires) in leases:
            tombstone = self.path.parent / f".{self.path.name}.{token}.broken"
            try:
                self.fs.rename(self.path / name, tombstone)
            except FileNotFoundError:
                return  # its holder beat, or another process broke it first: look again
            except OSError as error:
                raise self._error("break", error) from None
            logger.warning("broke %s: %s stopped renewing it", self._where(), name)
            try:
                self.fs.unlink(tombstone)
            except OSError:
                pass
        try:
            self.fs.rmdir(self.path)
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise self._error("break", error) from None

    def _break_foreign(self) -> None:
        try:
            age = self.wall() - self.fs.mtime(self.path)
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._error("read", error) from None
        if age < self.lease:
            raise LockHeld(
                f"{self._where()} is held by another program (a lock directory without a "
                f"xoweb lease, touched {age:.0f} s ago: Xen Orchestra, or a xoweb process "
                "that is starting)"
            )
        try:
            self.fs.rmdir(self.path)  # only ever removes an empty directory
        except OSError as error:
            if error.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST):
                raise self._error("break", error) from None

    def holder_if_held(self) -> str:
        """Who holds the lock if someone alive does ("" otherwise), changing nothing: what a
        dry run asks before it reads a VM folder another process may be writing."""
        try:
            names = self.fs.listdir(self.path)
        except OSError:
            return ""
        leases = [(name, parsed) for name in names if (parsed := _parse_lease(name))]
        if leases:
            name, (_token, expires) = max(leases, key=lambda item: item[1][1])
            alive = expires > self.clock() and not holder_is_gone(self._content(name))
            return self._describe(name) if alive else ""
        try:
            age = self.wall() - self.fs.mtime(self.path)
        except OSError:
            return ""
        return (
            "another program (a lock directory without a xoweb lease)" if age < self.lease else ""
        )

    def _content(self, name: str) -> dict:
        try:
            content = json.loads(self.fs.read_bytes(self.path / name))
        except (OSError, ValueError):
            return {}
        return content if isinstance(content, dict) else {}

    def _describe(self, name: str) -> str:
        content = self._content(name)
        try:
            return f"{content['holder']} (pid {content['pid']} on {content['host']})"
        except (KeyError, TypeError):
            return "another process"

    # -- heartbeat ---------------------------------------------------------------------------

    def beat(self) -> None:
        """Renew the lease now; ``LockLost`` if the lock was broken meanwhile."""
        with self._mutex:
            if not self.held:
                return
            if self.lost:
                raise LockLost(self.lost)
            old = self._lease_path
            new_expires = self.clock() + self.lease
            try:
                self.fs.rename(old, self.path / _lease_name(self.token, new_expires))
            except FileNotFoundError:
                self.lost = (
                    f"{self._where()} was broken by another process (this one did not renew it "
                    "in time): the backup stops without committing"
                )
                raise LockLost(self.lost) from None
            except OSError as error:
                raise self._error("renew", error) from None
            self.expires = new_expires

    def _beat_forever(self) -> None:
        while not self._stop.wait(self.heartbeat):
            try:
                self.beat()
            except LockLost:
                return
            except RemoteError as error:
                # The remote hiccuped: try again at the next beat; check() says when the
                # lease is over.
                logger.warning("%s", error)

    def check(self) -> None:
        """Raise ``LockLost`` unless the lock is still ours and its lease has not ended."""
        if self.lost:
            raise LockLost(self.lost)
        if self.held and self.clock() >= self.expires:
            raise LockLost(
                f"the lease of {self._where()} ended before it could be renewed (the remote or "
                "this process was too slow): the backup stops without committing"
            )

    # -- release -----------------------------------------------------------------------------

    def release(self) -> None:
        """Give the lock back (never someone else's); safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with self._mutex:
            if not self.held:
                return
            self.held = False
            if not self.lost:
                self._remove_quietly()

    def _remove_quietly(self) -> None:
        tombstone = self.path.parent / f".{self.path.name}.{self.token}.released"
        try:
            self.fs.rename(self._lease_path, tombstone)
            self.fs.unlink(tombstone)
        except OSError as error:
            logger.warning("could not release %s: %s", self._where(), error)
        try:
            self.fs.rmdir(self.path)
        except OSError:
            pass  # not empty (another holder already) or gone: not ours to remove

    def _error(self, action: str, error: OSError) -> RemoteError:
        return RemoteError(
            f"cannot {action} {self._where()}: {error.strerror or error}",
            remote_name=self.remote_name,
        )

    def __enter__(self) -> VmLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
