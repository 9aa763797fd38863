"""Each cause of a full backup, with its reason code and sentence (docs/backup-engine.md §3)."""

from __future__ import annotations

import pytest

from backups.engine import DiskMode, FullReason
from backups.engine.planner import RemoteBaseStatus

from .conftest import assert_restores_exactly, job, schedule

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def vm(pool):
    return pool.make_vm("reasons", disks=2)


def modes(outcome):
    return [(disk.mode, disk.reason_code) for disk in outcome.disks]


def delta_round(pool, vm, remotes, **options):
    pool.write(vm, 0, blocks=1, seed=len(pool.expected) + 7)
    outcome = pool.backup(vm, remotes, **options)
    assert outcome.status == "success", outcome.error
    return outcome


def test_first_backup_then_delta(pool, vm, remotes):
    first = pool.backup(vm, remotes)
    assert modes(first) == [(DiskMode.FULL, FullReason.FIRST_BACKUP)] * 2
    assert first.disks[0].reason == "full: first backup of this disk by job 'nightly'"
    second = delta_round(pool, vm, remotes)
    assert modes(second) == [(DiskMode.DELTA, None)] * 2
    assert second.disks[0].reason == f"delta on {first.timestamp} (1 delta since the last full)"


def test_job_mode_full_writes_fulls_only(pool, vm, remotes):
    full_job = job(mode="full")
    pool.backup(vm, remotes, job=full_job)
    outcome = delta_round(pool, vm, remotes, job=full_job)
    assert modes(outcome) == [(DiskMode.FULL, FullReason.JOB_MODE_FULL)] * 2
    assert outcome.disks[0].reason == "full: job 'nightly' makes full backups only"
    data = remotes[0].read_metadata(outcome.metadata["r1"])
    assert set(data["isVhdDifferencing"].values()) == {False}
    assert data["xoweb"]["jobMode"] == "full"
    assert remotes[0].list_backups(vm)[-1].mode == "full"
    # Full mode keeps no snapshot: no base is ever needed.
    assert pool.our_snapshots(vm) == []


def test_a_forcing_schedule(pool, vm, remotes):
    pool.backup(vm, remotes)
    sunday = schedule(id="6a1c2f0e-0000-4000-8000-0000000000b2", name="sunday", force_full=True)
    outcome = delta_round(pool, vm, remotes, schedule=sunday)
    assert modes(outcome) == [(DiskMode.FULL, FullReason.FORCED_BY_SCHEDULE)] * 2
    assert outcome.disks[0].reason == "full: the schedule 'sunday' forces full backups"
    # The daily schedule chains onto the forced full.
    after = delta_round(pool, vm, remotes)
    assert after.disks[0].reason == f"delta on {outcome.timestamp} (1 delta since the last full)"


def test_the_full_interval_is_xo_s_rule(pool, vm, remotes):
    every_3 = job(full_interval=3)
    pool.backup(vm, remotes, job=every_3)
    assert modes(delta_round(pool, vm, remotes, job=every_3)) == [(DiskMode.DELTA, None)] * 2
    assert modes(delta_round(pool, vm, remotes, job=every_3)) == [(DiskMode.DELTA, None)] * 2
    outcome = delta_round(pool, vm, remotes, job=every_3)  # 3 <= 2 deltas + 1
    assert modes(outcome) == [(DiskMode.FULL, FullReason.FULL_INTERVAL)] * 2
    assert outcome.disks[0].reason == (
        "full: job 'nightly' makes a full every 3 backups and the chain holds 2 deltas"
    )


def test_the_chain_limit(pool, vm, remotes):
    limited = job(max_chain_length=1)
    pool.backup(vm, remotes, job=limited)
    assert modes(delta_round(pool, vm, remotes, job=limited)) == [(DiskMode.DELTA, None)] * 2
    outcome = delta_round(pool, vm, remotes, job=limited)
    assert modes(outcome) == [(DiskMode.FULL, FullReason.CHAIN_LIMIT)] * 2
    assert outcome.disks[0].reason == "full: the chain of this disk reached its limit of 1 deltas"


def test_the_base_snapshot_deleted_on_the_pool(pool, vm, remotes):
    first = pool.backup(vm, remotes)
    gone = first.disks[0].snapshot_vdi_uuid
    pool.client.call("VDI.destroy", pool.vdi_ref(gone))
    outcome = delta_round(pool, vm, remotes)
    assert modes(outcome) == [
        (DiskMode.FULL, FullReason.BASE_SNAPSHOT_GONE),
        (DiskMode.DELTA, None),
    ]
    assert outcome.disks[0].reason == (
        "full: the snapshot of the last backup of this disk is gone from the pool"
    )


def test_the_base_vhd_deleted_on_one_remote_makes_a_full_to_every_remote(pool, vm, remotes):
    """The clean pass that starts the next run finds the backup incomplete on nas2 and deletes
    its metadata (XO's rule: one missing disk and the backup would not restore); both disks'
    bases are then missing there, and each is a full to every remote (XO's rule 7)."""
    first = pool.backup(vm, remotes)
    base = remotes[1].path(first.disks[1].files["r2"])
    base.unlink()
    outcome = delta_round(pool, vm, remotes)
    [start, _end] = outcome.maintenance["r2"]
    assert [(f.kind, f.path, f.done) for f in start.findings if f.kind == "incomplete_backup"] == [
        ("incomplete_backup", first.metadata["r2"], True)
    ]
    assert modes(outcome) == [(DiskMode.FULL, FullReason.BASE_BACKUP_MISSING)] * 2
    assert outcome.disks[1].reason == (
        f"full: base backup {first.timestamp}.vhd is missing on remote 'nas2'"
    )
    # The full went to both remotes: nas1's copy is a full too.
    for remote in remotes:
        entry = remote.list_backups(vm)[-1]
        assert [disk.differencing for disk in entry.disks] == [False, False]
    assert assert_restores_exactly(pool, remotes[0]) == 4


def test_a_corrupt_base_vhd(pool, vm, remotes):
    """A base VHD that no longer opens is deleted by the clean pass with its backup, which
    would not restore; the disk is a full with the base missing (on every remote)."""
    first = pool.backup(vm, remotes)
    base = remotes[0].path(first.disks[0].files["r1"])
    with base.open("r+b") as handle:  # break the footer at the end
        handle.seek(-512, 2)
        handle.write(b"garbage!")
    outcome = delta_round(pool, vm, remotes)
    broken = [f for f in outcome.maintenance["r1"][0].findings if f.kind == "broken_vhd"]
    assert [(f.path, f.done) for f in broken] == [(first.disks[0].files["r1"], True)]
    assert "footer" in broken[0].message
    assert not base.exists()
    assert modes(outcome)[0] == (DiskMode.FULL, FullReason.BASE_BACKUP_MISSING)
    assert outcome.disks[0].reason == (
        f"full: base backup {first.timestamp}.vhd is missing on remote 'nas1'"
    )


def test_a_base_that_failed_its_verification(pool, vm, remotes):
    first = pool.backup(vm, remotes)
    bad = first.disks[1].files["r2"]
    outcome = delta_round(
        pool, vm, remotes, known_bad=lambda remote, path: (remote, path) == ("r2", bad)
    )
    assert modes(outcome) == [(DiskMode.DELTA, None), (DiskMode.FULL, FullReason.BASE_UNVERIFIED)]
    assert outcome.disks[1].reason == (
        f"full: base backup {first.timestamp}.vhd on remote 'nas2' failed its last verification"
    )
    assert RemoteBaseStatus.UNVERIFIED == "unverified"


def test_a_new_disk(pool, vm, remotes):
    pool.backup(vm, remotes)
    vm_ref = pool.vm_ref(vm)
    sr = pool.client.call("SR.get_by_uuid", pool.default_sr())
    vdi = pool.client.call(
        "VDI.create",
        {
            "name_label": "reasons disk 9",
            "name_description": "",
            "SR": sr,
            "virtual_size": str(8 * 2**20),
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {},
            "xenstore_data": {},
            "sm_config": {},
            "tags": [],
        },
    )
    pool.client.call(
        "VBD.create",
        {
            "VM": vm_ref,
            "VDI": vdi,
            "userdevice": "5",
            "bootable": False,
            "mode": "RW",
            "type": "Disk",
            "empty": False,
            "other_config": {},
            "qos_algorithm_type": "",
            "qos_algorithm_params": {},
        },
    )
    pool.sim.sim("vdi_write_random", vdi, "2", "9")
    outcome = delta_round(pool, vm, remotes)
    assert modes(outcome) == [
        (DiskMode.DELTA, None),
        (DiskMode.DELTA, None),
        (DiskMode.FULL, FullReason.NEW_DISK),
    ]
    assert outcome.disks[2].reason == "full: new disk, not in the previous backup"
    assert outcome.disks[2].userdevice == "5"
    assert assert_restores_exactly(pool, remotes[1]) == 5


def test_a_resized_disk(pool, vm, remotes):
    first = pool.backup(vm, remotes)
    disk = pool.disks(pool.vm_ref(vm))[1]
    pool.client.call("VDI.resize", disk, str(24 * 2**20))
    outcome = delta_round(pool, vm, remotes)
    assert modes(outcome) == [(DiskMode.DELTA, None), (DiskMode.FULL, FullReason.DISK_RESIZED)]
    assert outcome.disks[1].reason == (
        f"full: the disk was resized from {16 * 2**20} to {24 * 2**20} bytes since the backup "
        f"{first.timestamp}"
    )
    assert outcome.disks[1].size == 24 * 2**20
    assert assert_restores_exactly(pool, remotes[0]) == 4
