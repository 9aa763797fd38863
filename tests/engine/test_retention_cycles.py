"""Many cycles of writes, backups, retention and merges on the two schedules of one job,
against the simulator over HTTP: deltas, fulls forced by a schedule and by the job's interval,
long-term buckets in the schedule's time zone, at most one merge per run with the rest left
to the merge task. After each cycle each remote holds exactly what retention says, every backup kept
restores to the SHA-256 the pool gave at snapshot time, and the VHD files stay bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from backups.engine import FullReason
from backups.engine.maintenance import maintain_vm
from backups.engine.retention import decide

from .conftest import job, schedule
from .synthetic import content_sha256, dot_files, vhd_files

pytestmark = pytest.mark.timeout(300)

DAILY = schedule(
    id="6a1c2f0e-0000-4000-8000-0000000000a1",
    name="daily",
    retention=2,
    daily=3,
    weekly=1,
    timezone="Europe/Paris",
)
SUNDAY = schedule(
    id="6a1c2f0e-0000-4000-8000-0000000000b2",
    name="sunday",
    force_full=True,
    retention=1,
    monthly=1,
    timezone="Europe/Paris",
)


class Clock:
    """The backups' time: eight hours pass between two cycles."""

    def __init__(self) -> None:
        self.now = datetime(2026, 5, 4, 0, 30, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now


class Verified:
    """Restores already proven, by the files of their chain: a point is checked again only
    when a merge changed a file it reads."""

    def __init__(self) -> None:
        self.seen: dict[tuple, str] = {}
        self.checked = 0

    def check(self, pool, remote, entry, disk) -> None:
        from backups import vhd

        with vhd.open_chain(remote.path(disk.path)) as chain:
            files = tuple(
                (str(layer.path), layer.file_size, Path(layer.path).stat().st_mtime_ns)
                for layer in chain.layers
            )
        if files not in self.seen:
            self.seen[files] = content_sha256(remote.path(disk.path))
            self.checked += 1
        assert self.seen[files] == pool.expected[(entry.timestamp, disk.vdi_uuid)], (
            entry.path,
            disk.vdi_name,
        )


def test_cycles_keep_exactly_what_retention_says_and_every_kept_point_restores(pool, remotes):
    vm = pool.make_vm("cycles", disks=2, size="8M")
    clock = Clock()
    the_job = job(full_interval=4, snapshot_retention_by_schedule={DAILY.id: 0, SUNDAY.id: 0})
    made: dict[str, list[str]] = {DAILY.id: [], SUNDAY.id: []}
    model: dict[str, set[str]] = {DAILY.id: set(), SUNDAY.id: set()}
    reasons: list[tuple[str, FullReason | None]] = []
    verified = Verified()
    deferred = 0
    for cycle in range(16):
        clock.now += 8 * 3600
        current = SUNDAY if cycle % 6 == 5 else DAILY
        pool.write(vm, 0, blocks=1, seed=cycle + 1)
        if cycle % 3 == 0:
            pool.write(vm, 1, blocks=1, seed=100 + cycle)
        outcome = pool.backup(
            vm,
            remotes,
            job=the_job,
            schedule=current,
            clock=clock,
            merges_per_run=1,
            merge_batch_bytes=2**20,
        )
        assert outcome.status == "success", outcome.error
        reasons.append((current.name, outcome.disks[0].reason_code))
        made[current.id].append(outcome.timestamp)
        model[current.id].add(outcome.timestamp)
        # What retention says for the schedule that ran (the other keeps its own until it runs).
        model[current.id] = {
            v.timestamp for v in decide(sorted(model[current.id]), current.policy) if v.keep
        }
        expected = model[DAILY.id] | model[SUNDAY.id]
        for remote in remotes:
            entries = remote.list_backups(vm)
            assert {entry.timestamp for entry in entries} == expected, (cycle, remote)
            for entry in entries:
                for disk in entry.disks:
                    verified.check(pool, remote, entry, disk)
            referenced = {disk.path for entry in entries for disk in entry.disks}
            files = vhd_files(remote)
            assert referenced <= set(files)
            # Bounded: what retention kept, plus what this run dropped and left to merge.
            assert len(files) <= len(referenced) + 2 * 2, (cycle, sorted(set(files) - referenced))
            assert dot_files(remote) == []
            [_start, end] = outcome.maintenance[remote.remote_id]
            if end.merges_left:
                # What the merge task queued by the Django side does, off the backup window.
                left = maintain_vm(remote, vm, merges=None, lock_heartbeat=0)
                assert left.merges_done == end.merges_left
                deferred += left.merges_done
            assert set(vhd_files(remote)) == referenced
    modes = [reason for _name, reason in reasons]
    assert FullReason.FORCED_BY_SCHEDULE in modes and FullReason.FULL_INTERVAL in modes
    assert modes.count(None) >= 8  # deltas
    assert verified.checked > 40
    assert deferred > 0  # some merges waited for the merge task
    # Long-term buckets at work: the daily schedule keeps more than its newest two.
    assert len(model[DAILY.id]) > 2
    for remote in remotes:
        # The merges left for later, then nothing more to do: one file per kept backup and disk.
        rest = maintain_vm(remote, vm, merges=None, lock_heartbeat=0)
        assert rest.merges_left == 0
        entries = remote.list_backups(vm)
        assert len(vhd_files(remote)) == 2 * len(entries)
        for entry in entries:
            for disk in entry.disks:
                verified.check(pool, remote, entry, disk)
    # The newest backup restores onto the pool too.
    from backups.engine import restore_disk_to_sr

    newest = remotes[0].list_backups(vm)[-1]
    for disk in newest.disks:
        restored = restore_disk_to_sr(
            pool.client, remotes[0], newest.path, disk.vdi_uuid, pool.default_sr()
        )
        assert pool.sha256(restored) == pool.expected[(newest.timestamp, disk.vdi_uuid)]
