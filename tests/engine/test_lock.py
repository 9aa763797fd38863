"""The VM folder's lock: a lease renewed by a heartbeat, broken only when its holder stopped
beating, with an injected clock (and one test with the real heartbeat thread)."""

from __future__ import annotations

import os
import time

import pytest

from backups.engine import LockHeld, LockLost, RemoteAdapter

from .recording_fs import RecordingFileSystem

VM = "0f3c4e42-1111-4222-8333-444455556666"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def remote(tmp_path):
    return RemoteAdapter(tmp_path / "nas", remote_id="r1", name="nas", fs=RecordingFileSystem())


def lock(remote, clock, holder, **options):
    options.setdefault("lease", 60)
    options.setdefault("heartbeat", 0)
    return remote.lock(VM, holder=holder, clock=clock, **options)


def leases(remote) -> list[str]:
    return sorted(os.listdir(remote.path(f"xo-vm-backups/{VM}.lock")))


def test_acquire_and_release(remote):
    clock = Clock()
    with lock(remote, clock, "run 1") as held:
        (name,) = leases(remote)
        assert name == f"lease.{held.token}.{((1000 + 60) * 1000)}"
        assert held.held
    assert not remote.path(f"xo-vm-backups/{VM}.lock").exists()


def test_a_live_lock_is_never_broken(remote):
    clock = Clock()
    first = lock(remote, clock, "run 1 of job nightly").acquire()
    clock.now += 59
    with pytest.raises(LockHeld) as caught:
        lock(remote, clock, "run 2").acquire()
    message = str(caught.value)
    assert f"the VM folder's lock {remote.root}/xo-vm-backups/{VM}.lock on remote 'nas'" in message
    assert "is held by run 1 of job nightly (pid " in message
    assert "whose lease runs for another 1 s" in message
    # Beats keep it alive past the first lease.
    first.beat()
    clock.now += 59
    with pytest.raises(LockHeld):
        lock(remote, clock, "run 2").acquire()
    first.release()


def test_a_lock_whose_holder_stopped_beating_is_broken_and_the_holder_learns_it(remote):
    clock = Clock()
    first = lock(remote, clock, "run 1").acquire()
    clock.now += 61
    with pytest.raises(LockLost, match=r"lease .* ended before it could be renewed"):
        first.check()
    second = lock(remote, clock, "run 2").acquire()
    assert leases(remote) == [f"lease.{second.token}.{((1061 + 60) * 1000)}"]
    with pytest.raises(LockLost, match="was broken by another process"):
        first.beat()
    with pytest.raises(LockLost):
        first.check()
    first.release()  # never removes the new holder's lock
    assert leases(remote) == [f"lease.{second.token}.{((1061 + 60) * 1000)}"]
    second.check()
    second.release()
    assert not remote.path(f"xo-vm-backups/{VM}.lock").exists()


def test_a_beat_between_the_breaker_s_look_and_its_rename_wins(remote):
    clock = Clock()
    first = lock(remote, clock, "run 1").acquire()
    clock.now += 61

    def holder_beats_now(_path):
        first.beat()

    # The breaker listed the stale lease; the holder beats before the breaker's rename.
    remote.fs.before["rename"] = holder_beats_now
    with pytest.raises(LockHeld, match="is held by run 1"):
        lock(remote, clock, "run 2").acquire()
    first.check()
    first.release()


def test_two_breakers_of_one_stale_lock_never_break_the_winner(remote, tmp_path):
    clock = Clock()
    lock(remote, clock, "dead run").acquire()
    clock.now += 61
    winner = []

    def another_breaker_wins_first(_path):
        other = RemoteAdapter(remote.root, remote_id="r1", name="nas")  # plain filesystem
        winner.append(other.lock(VM, holder="run 3", clock=clock, lease=60, heartbeat=0).acquire())

    remote.fs.before["rename"] = another_breaker_wins_first
    with pytest.raises(LockHeld, match="is held by run 3"):
        lock(remote, clock, "run 2").acquire()
    winner[0].check()
    assert leases(remote) == [f"lease.{winner[0].token}.{((1061 + 60) * 1000)}"]
    winner[0].release()


def test_a_lock_directory_without_a_lease_is_another_program_s(remote):
    folder = remote.path(f"xo-vm-backups/{VM}.lock")
    folder.parent.mkdir(parents=True)
    folder.mkdir()  # what XO's proper-lockfile makes, its mtime being its heartbeat
    with pytest.raises(
        LockHeld, match=r"held by another program .a lock directory without a xoweb lease"
    ):
        lock(remote, Clock(), "run 1").acquire()
    old = time.time() - 120
    os.utime(folder, (old, old))
    with lock(remote, Clock(), "run 1"):
        assert len(leases(remote)) == 1


def test_the_heartbeat_thread_keeps_the_lock_alive(remote):
    holder = remote.lock(VM, holder="run 1", lease=1.0, heartbeat=0.2)
    with holder:
        time.sleep(1.5)
        holder.check()
        with pytest.raises(LockHeld):
            remote.lock(VM, holder="run 2", lease=1.0, heartbeat=0.2).acquire()
    with remote.lock(VM, holder="run 2", lease=1.0, heartbeat=0.2):
        pass


def test_the_lease_outlives_several_heartbeats():
    with pytest.raises(
        ValueError, match=r"heartbeat \(40 s\) must be at most half the lease \(60 s\)"
    ):
        RemoteAdapter("/tmp").lock(VM, holder="x", lease=60, heartbeat=40)


def test_the_lease_is_durable_before_the_lock_is_used(remote):
    with lock(remote, Clock(), "run 1"):
        ops = remote.fs.ops("mkdir", "create", "fsync", "fsync_dir")
    assert ops[-5:] == ["mkdir", "create", "fsync", "fsync_dir", "fsync_dir"]


HOLD_IN_A_CHILD = """
import sys, time
from backups.engine import RemoteAdapter
remote = RemoteAdapter(sys.argv[1], remote_id="r1", name="nas")
held = remote.lock(sys.argv[2], holder="run 7 in a child", lease=600, heartbeat=0).acquire()
print("held", flush=True)
time.sleep(600)
"""


def _child_holding_the_lock(remote):
    import subprocess
    import sys
    from pathlib import Path

    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_IN_A_CHILD, str(remote.root), VM],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "held"
    return child


def test_a_lock_whose_holder_was_killed_on_this_machine_is_broken_at_once(remote):
    """A worker killed (SIGKILL, out of memory) holds a lease of 10 minutes: the next backup of
    the VM on this machine sees that its process is gone and takes the lock at once; while it
    runs, the lock is never broken."""
    import signal

    child = _child_holding_the_lock(remote)
    try:
        with pytest.raises(LockHeld, match=r"is held by run 7 in a child \(pid \d+ on "):
            lock(remote, time.time, "run 8").acquire()
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        with lock(remote, time.time, "run 8") as taken:
            assert leases(remote) == [f"lease.{taken.token}.{int(taken.expires * 1000)}"]
    finally:
        child.kill()
        child.wait()


def test_a_lease_of_another_machine_waits_for_its_end(remote):
    """Pids mean nothing across machines (or boots, or pid namespaces): such a lease is held
    until it ends, whatever pid it names."""
    import json

    clock = Clock()
    first = lock(remote, clock, "run on host b").acquire()
    (name,) = leases(remote)
    path = remote.path(f"xo-vm-backups/{VM}.lock/{name}")
    content = json.loads(path.read_text())
    content.update(boot="another-machine", pid=2**22 + 12345)  # no such pid here
    path.write_text(json.dumps(content))
    with pytest.raises(LockHeld, match="is held by run on host b"):
        lock(remote, clock, "run 2").acquire()
    clock.now += 61
    lock(remote, clock, "run 2").acquire().release()
    first.release()


def test_a_process_may_wait_for_a_holder_that_ends_soon(remote):
    """A backup meeting a merge task's lock waits its turn (``acquire(wait=…)``) instead of
    failing; one that waits less than the holder holds still fails with the holder's name."""
    import threading

    clock = Clock()
    merge = lock(remote, clock, "merge task of VM x").acquire()
    with pytest.raises(LockHeld, match="held by merge task of VM x"):
        lock(remote, clock, "run 3").acquire(wait=0.2, poll=0.05)
    threading.Timer(0.3, merge.release).start()
    started = time.monotonic()
    backup = lock(remote, clock, "run 3").acquire(wait=5, poll=0.05)
    assert 0.2 < time.monotonic() - started < 4
    assert backup.held
    backup.release()
