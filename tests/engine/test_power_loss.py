"""Power loss during retention, merges, the clean pass and a backup's commit: every state the
recorded flushes allow (tests/powerloss.py) is rebuilt, recovered with the next pass
(interrupted merges resumed, then the clean pass), and must give a remote where every
committed backup restores exactly, nothing committed is lost, no temporary file is left and a
second pass has nothing left to do.

Removing a flush that matters from the code makes one of these fail (docs/maintenance.md §6
lists each flush and the test that needs it).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from backups.engine import RemoteAdapter
from backups.engine.maintenance import maintain_vm
from backups.engine.prune import ScheduleRetention
from backups.engine.retention import RetentionPolicy
from tests.powerloss import NoSyncFs, RecordingFs, Trace

from .synthetic import (
    BLOCK,
    DAILY,
    JOB_ID,
    WEEKLY,
    SyntheticVm,
    dot_files,
    restores_exactly,
    vhd_files,
)

FROZEN = 2_000_000_000.0  # the recorded passes' clock (their leases are counted in it)
LATER = FROZEN + 10**6  # the recovery's: every recorded lease is long over


def recover(root: Path, vm_uuid: str):
    remote = RemoteAdapter(root, remote_id="r", name="nas", fs=NoSyncFs())
    report = maintain_vm(
        remote, vm_uuid, merges=None, clock=lambda: LATER, lock_heartbeat=0, batch_bytes=BLOCK
    )
    assert not report.skipped, report.skipped
    return remote


def present_points(root: Path, vm_uuid: str, broken: set[str]) -> set[str]:
    """The backups whose metadata a crash state holds (those broken from the start aside)."""
    remote = RemoteAdapter(root, remote_id="r", name="nas")
    return {entry.timestamp for entry in remote.list_backups(vm_uuid)} - broken


def replay(
    trace: Trace,
    tmp_path: Path,
    vm_uuid: str,
    expected: dict[tuple[str, str], str],
    committed: set[str],
    *,
    done: set[str] = frozenset(),
    droppable: set[str] = frozenset(),
    broken: set[str] = frozenset(),
    exhaustive: int = 6,
) -> int:
    """Check every crash state; returns how many distinct states were tried.

    Rule 1 (a backup exists if and only if its metadata exists) for every state: each backup
    whose metadata the crash left restores exactly there and then, before any recovery, and
    is still there, restoring exactly, after it — unless the operation was dropping it
    (``droppable``). ``committed`` (before the operation) is never lost, and ``done`` (what
    the operation had committed when it returned) not either once it returned. ``broken``:
    metadata broken from the start (the clean pass removes it). After the recovery: nothing
    temporary, every VHD used, and a second pass has nothing left to do.
    """
    count = 0
    for state in trace.crash_states(exhaustive):
        root = tmp_path / f"state-{count}"
        state.tree.materialize(root)
        try:
            before = present_points(root, vm_uuid, set(broken))
            restores_exactly(RemoteAdapter(root), expected, only=before)
            remote = recover(root, vm_uuid)
            present = {entry.timestamp for entry in remote.list_backups(vm_uuid)}
            must = set(committed) | (before - set(droppable))
            if state.returned:
                must |= set(done)
            assert must <= present, f"lost {sorted(must - present)}"
            restores_exactly(remote, expected)
            assert dot_files(remote) == [], dot_files(remote)
            referenced = {
                disk.path for entry in remote.list_backups(vm_uuid) for disk in entry.disks
            }
            assert set(vhd_files(remote)) == referenced
            again = maintain_vm(remote, vm_uuid, clock=lambda: LATER, lock_heartbeat=0)
            assert [f for f in again.findings if f.done] == [], again.findings
        except AssertionError as error:
            raise AssertionError(f"{state.how}: {error}") from None
        except Exception as error:
            raise AssertionError(f"{state.how}: recovery failed: {error!r}") from error
        count += 1
    return count


def test_power_loss_during_retention_and_merges(tmp_path):
    """Retention drops the two oldest of five backups; the pass deletes their metadata and
    merges their deltas into the oldest kept backup, in batches of one block (a state save
    between batches)."""
    source = tmp_path / "remote"
    vm = SyntheticVm.make(RemoteAdapter(source, remote_id="r", name="nas"), blocks=6)
    vm.write(3)
    stamps = []
    for _ in range(5):
        stamps.append(vm.backup())
        vm.write(2)
    fs = RecordingFs(source)
    remote = RemoteAdapter(source, remote_id="r", name="nas", fs=fs)
    report = maintain_vm(
        remote,
        vm.uuid,
        retention=[ScheduleRetention(JOB_ID, DAILY, RetentionPolicy(keep_last=3))],
        clock=lambda: FROZEN,
        lock_heartbeat=0,
        batch_bytes=BLOCK,
    )
    assert [d.timestamp for d in report.dropped] == stamps[:2]
    assert report.merges_done == 1
    trace = fs.trace()
    assert sum(op.kind == "fsync" for op in trace.ops) >= 4
    tried = replay(
        trace, tmp_path, vm.uuid, vm.expected, set(stamps[2:]), droppable=set(stamps[:2])
    )
    assert tried > 50


def test_power_loss_during_a_clean_pass_of_a_messy_remote(tmp_path):
    """Temporary files, an incomplete backup, an orphan, an unused delta to merge, a chain
    of another disk to delete: the clean pass repairs it all, and a crash anywhere in it
    loses nothing committed."""
    source = tmp_path / "remote"
    adapter = RemoteAdapter(source, remote_id="r", name="nas")
    vm = SyntheticVm.make(adapter, disks=2, blocks=4)
    vm.write(2)
    first = vm.backup(full=True)
    vm.write(1)
    second = vm.backup()
    vm.write(1)
    third = vm.backup(schedule=WEEKLY)
    # the second backup dropped (its delta must fold into the third's)
    adapter.delete_backup(f"xo-vm-backups/{vm.uuid}/{second}.json")
    # a temporary file; an orphan delta (it names a parent by the name of a file of another
    # disk); an incomplete backup (a disk file missing)
    folder = source / "xo-vm-backups" / vm.uuid
    (folder / f".{third}.json.abcd1234.partial").write_bytes(b"{")
    disks = [folder / "vdis" / JOB_ID / disk.uuid for disk in vm.disks]
    (disks[1] / "20270101T000000Z.vhd").write_bytes((disks[0] / f"{third}.vhd").read_bytes())
    missing = f"{uuid.uuid4()}"
    (folder / "20261231T000000Z.json").write_text(
        (folder / f"{first}.json")
        .read_text()
        .replace(first, "20261231T000000Z")
        .replace(vm.disks[1].uuid, missing)
    )
    fs = RecordingFs(source)
    remote = RemoteAdapter(source, remote_id="r", name="nas", fs=fs)
    report = maintain_vm(remote, vm.uuid, clock=lambda: FROZEN, lock_heartbeat=0)
    kinds = sorted({finding.kind for finding in report.findings})
    assert {"temporary", "incomplete_backup", "unused_merge"} <= set(kinds), kinds
    trace = fs.trace()
    replay(trace, tmp_path, vm.uuid, vm.expected, {first, third}, broken={"20261231T000000Z"})


@pytest.mark.parametrize("exhaustive", [6])
def test_the_crash_states_include_the_ones_that_matter(tmp_path, exhaustive):
    """The model itself: a write not yet flushed may be lost, a rename not yet made durable
    may be lost, a flushed one never is."""
    root = tmp_path / "r"
    root.mkdir()
    fs = RecordingFs(root)
    handle = fs.create(root / ".a.partial")
    handle.write(b"x" * 1024)
    handle.fsync()
    handle.close()
    fs.rename(root / ".a.partial", root / "a")
    handle = fs.create(root / "b")
    handle.write(b"y" * 8192)
    handle.close()
    fs.fsync_dir(root)
    trees = [state.tree for state in fs.trace().crash_states(exhaustive)]
    contents = [{path: bytes(tree.files[ino]) for path, ino in tree.walk()} for tree in trees]
    assert {} in contents  # nothing durable yet
    assert any(c.get("a") == b"x" * 1024 and "b" not in c for c in contents)
    assert any(c.get("b") == b"" for c in contents)  # b's name durable, its data not
    assert any(c.get("b") == b"y" * 4096 for c in contents)  # torn
    assert not any(c.get("a") not in (None, b"x" * 1024) for c in contents)  # a never torn


def test_power_loss_during_a_backup_its_retention_and_merges(pool, tmp_path):
    """A whole VM backup recorded: the clean pass that starts it, the transfer of two disks,
    the metadata (the commit point), then retention dropping the oldest backup and the merge
    of its files. Whatever the crash leaves, the next pass gives a remote where the backups
    committed before all restore to the SHA-256 the pool gave at snapshot time, and the new
    one too if its metadata survived."""
    from .conftest import job, schedule

    vm = pool.make_vm("powerloss", disks=2, size="2M")
    source = tmp_path / "nas"
    plain = [RemoteAdapter(source, remote_id="r", name="nas")]
    options = dict(job=job(), schedule=schedule(retention=2), lock_lease=60, lock_heartbeat=0)
    first = pool.backup(vm, plain, **options)
    pool.write(vm, 0, blocks=1, seed=3)
    second = pool.backup(vm, plain, **options)
    pool.write(vm, 1, blocks=1, seed=4)
    fs = RecordingFs(source)
    third = pool.backup(vm, [RemoteAdapter(source, remote_id="r", name="nas", fs=fs)], **options)
    assert third.status == "success", third.error
    [_start, end] = third.maintenance["r"]
    assert [d.timestamp for d in end.dropped] == [first.timestamp]
    assert end.merges_done == 2  # one per disk
    trace = fs.trace()
    kinds = {op.kind for op in trace.ops}
    assert {"write", "fsync", "rename", "fsync_dir", "unlink"} <= kinds
    expected = {key: value for key, value in pool.expected.items()}
    tried = replay(
        trace,
        tmp_path,
        vm,
        expected,
        {second.timestamp},
        done={third.timestamp},
        droppable={first.timestamp},
        exhaustive=3,
    )
    assert tried > 50


def test_power_loss_during_a_first_backup(pool, tmp_path):
    """The first backup of a VM to a new remote: every folder is created on the way. Once the
    backup returned, it is on the disk whatever the crash keeps."""
    from .conftest import job, schedule

    vm = pool.make_vm("first", disks=1, size="2M")
    source = tmp_path / "nas"
    source.mkdir()
    fs = RecordingFs(source)
    remote = RemoteAdapter(source, remote_id="r", name="nas", fs=fs)
    outcome = pool.backup(
        vm, [remote], job=job(), schedule=schedule(), lock_lease=60, lock_heartbeat=0
    )
    assert outcome.status == "success", outcome.error
    trace = fs.trace()
    assert sum(op.kind == "link" and op.is_dir for op in trace.ops) >= 4  # folders made
    replay(trace, tmp_path, vm, dict(pool.expected), set(), done={outcome.timestamp})
