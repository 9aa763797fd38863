"""Retention, a clean pass and merges killed (SIGKILL) at many instants, then run again: nothing
committed is lost, every backup kept restores exactly, no temporary file is left.

Each run happens in a forked child that counts the file operations it asks of the remote and
kills itself at operation N (tearing a large write in half first, as a kill in the middle of
a write would); N is drawn from a seeded generator among every operation of the pass. Then the pass
runs again (killed once more in the middle of that, for some N), then to its end. A killed
process keeps what it wrote in the page cache: this is the crash of a process, the crash of
the machine is tests/engine/test_power_loss.py.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
from pathlib import Path

import pytest

from backups.engine import RemoteAdapter
from backups.engine.fsio import RealFile, RealFileSystem
from backups.engine.maintenance import maintain_vm
from backups.engine.prune import ScheduleRetention
from backups.engine.retention import RetentionPolicy
from backups.vhd.fileio import OsRwFile

from .synthetic import BLOCK, DAILY, JOB_ID, SyntheticVm, dot_files, restores_exactly, vhd_files

FROZEN = 2_000_000_000.0
LATER = FROZEN + 10**6
RULES = [ScheduleRetention(JOB_ID, DAILY, RetentionPolicy(keep_last=2))]


class Dying(RealFileSystem):
    """Kills its process at its ``kill_at``-th file operation (a write of more than a page is
    cut in half first: a kill stops a long copy into the page cache, never a page)."""

    def __init__(self, kill_at: int | None) -> None:
        self.kill_at = kill_at
        self.count = 0

    def tick(self, tear=None) -> None:
        self.count += 1
        if self.count == self.kill_at:
            if tear is not None:
                tear()
            os.kill(os.getpid(), signal.SIGKILL)

    def create(self, path):
        real = super().create(path)
        self.tick()
        fs = self

        class File(RealFile):
            def write(self, *chunks):
                data = b"".join(bytes(chunk) for chunk in chunks)
                fs.tick(
                    lambda: (
                        RealFile.write(self, data[: len(data) // 2]) if len(data) > 4096 else None
                    )
                )
                return super().write(data)

            def fsync(self):
                fs.tick()
                super().fsync()

        return File(real.path, real.fd)

    def open_rw(self, path):
        real = super().open_rw(path)
        fs = self

        class File(OsRwFile):
            def pwrite(self, data, offset):
                data = bytes(data)
                fs.tick(
                    lambda: (
                        OsRwFile.pwrite(self, data[: len(data) // 2], offset)
                        if len(data) > 4096
                        else None
                    )
                )
                return super().pwrite(data, offset)

            def pwritev(self, chunks, offset):
                return self.pwrite(b"".join(bytes(chunk) for chunk in chunks), offset)

            def datasync(self):
                fs.tick()
                super().datasync()

            def truncate(self, size):
                fs.tick()
                super().truncate(size)

        return File(real.path, real.fd)

    def rename(self, source, target):
        self.tick()
        super().rename(source, target)

    def unlink(self, path):
        self.tick()
        super().unlink(path)

    def mkdir(self, path):
        self.tick()
        super().mkdir(path)

    def rmdir(self, path):
        self.tick()
        super().rmdir(path)

    def fsync_dir(self, path):
        self.tick()
        super().fsync_dir(path)


def run_pass(root: Path, vm_uuid: str, kill_at: int | None, clock: float, **options) -> int:
    """The pass in a forked child (killed at operation ``kill_at``); the operations it made."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            fs = Dying(kill_at)
            remote = RemoteAdapter(root, remote_id="r", name="nas", fs=fs)
            maintain_vm(
                remote, vm_uuid, clock=lambda: clock, lock_heartbeat=0, batch_bytes=BLOCK,
                **options,
            )  # fmt: skip
            os.write(write, str(fs.count).encode())
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write)
    _pid, status = os.waitpid(pid, 0)
    made = os.read(read, 64)
    os.close(read)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return -1
    assert os.WEXITSTATUS(status) == 0, "the pass failed in the child"
    return int(made)


def check(root: Path, vm: SyntheticVm, committed: set[str]) -> None:
    remote = RemoteAdapter(root, remote_id="r", name="nas")
    present = {entry.timestamp for entry in remote.list_backups(vm.uuid)}
    assert committed <= present, f"lost {sorted(committed - present)}"
    restores_exactly(remote, vm.expected)
    assert dot_files(remote) == []
    assert set(vhd_files(remote)) == {
        disk.path for entry in remote.list_backups(vm.uuid) for disk in entry.disks
    }


@pytest.fixture
def template(tmp_path):
    """A remote with five backups of a two-disk VM, the second one dropped already (its deltas
    wait to be merged), and leftovers of a killed run."""
    root = tmp_path / "template"
    vm = SyntheticVm.make(RemoteAdapter(root, remote_id="r", name="nas"), disks=2, blocks=6)
    stamps = []
    for _ in range(5):
        vm.write(2)
        stamps.append(vm.backup())
    (root / "xo-vm-backups" / vm.uuid / f"{stamps[1]}.json").unlink()
    (root / "xo-vm-backups" / vm.uuid / f".{stamps[4]}.json.abcdabcd.partial").write_bytes(b"{")
    return root, vm, stamps


@pytest.mark.parametrize(("what", "kills"), [("retention and merges", 36), ("clean pass", 24)])
def test_a_pass_killed_at_dozens_of_instants_then_run_again_loses_nothing(
    tmp_path, template, what, kills
):
    root, vm, stamps = template
    options = {"retention": RULES} if what == "retention and merges" else {}
    committed = {stamps[3], stamps[4]} if options else {stamps[0], stamps[2], stamps[3], stamps[4]}
    probe = tmp_path / "probe"
    shutil.copytree(root, probe)
    total = run_pass(probe, vm.uuid, None, FROZEN, **options)
    assert total > 30
    rng = random.Random(13)
    for kill_at in sorted(rng.sample(range(1, total + 1), min(kills, total))):
        work = tmp_path / f"kill-{kill_at}"
        shutil.copytree(root, work)
        assert run_pass(work, vm.uuid, kill_at, FROZEN, **options) == -1
        # Run again, killed once more half the time (its lease is over: the clock moved on).
        if rng.random() < 0.5:
            run_pass(work, vm.uuid, rng.randint(1, 40), LATER, **options)
        # Later still: a lock folder a kill left without its lease (killed between its mkdir
        # and its lease, or between the break of a lease and the rmdir) is over too.
        lock = work / "xo-vm-backups" / f"{vm.uuid}.lock"
        if lock.exists():
            os.utime(lock, (1, 1))
        assert run_pass(work, vm.uuid, None, LATER + 10**6, **options) >= 0
        try:
            check(work, vm, committed)
        except AssertionError as error:
            raise AssertionError(f"killed at operation {kill_at} of {total}: {error}") from None
        shutil.rmtree(work)
