"""The snapshot janitor of a whole pool (backups/engine/snapshot_sweep.py), against the
simulator: ours only, found by our tags; leftovers of runs that died once old enough; exported
snapshots beyond their schedule's retention; the newest exported group of each VM (the next
base) always kept; a checkpoint's suspend VDI removed with it; busy VMs left alone."""

from __future__ import annotations

import time

import pytest

from backups.engine import tags
from backups.engine.snapshot_sweep import SweepJob, find_our_snapshots, sweep_pool

from .conftest import JOB_ID, SCHEDULE_ID, job, schedule

pytestmark = pytest.mark.timeout(120)

LONG_AGO = "20200101T00:00:00Z"
KEEP_ALL = {"job": job(), "schedule": schedule(snapshot_retention=10)}
JOBS = {JOB_ID: SweepJob(JOB_ID, "nightly", "delta", {SCHEDULE_ID: 0})}


def snapshot_refs(pool, vm_uuid: str) -> set[str]:
    return set(pool.client.call("VM.get_snapshots", pool.vm_ref(vm_uuid)))


def disk_snapshots(pool, vm_uuid: str) -> set[str]:
    return {
        snap
        for vdi in pool.disks(pool.vm_ref(vm_uuid))
        for snap in pool.client.call("VDI.get_snapshots", vdi)
    }


def tag(pool, cls: str, ref: str, marks: dict[str, str]) -> None:
    other = pool.client.call(f"{cls}.get_other_config", ref)
    pool.client.call(f"{cls}.set_other_config", ref, {**other, **marks})


def test_exported_groups_beyond_retention_go_and_the_newest_stays(pool, remotes):
    vm = pool.vm("vm-00000")["uuid"]  # running: VM snapshots
    first = pool.backup(vm, remotes, **KEEP_ALL)
    pool.write(vm, 0)
    second = pool.backup(vm, remotes, **KEEP_ALL)
    assert len(snapshot_refs(pool, vm)) == 2  # the job kept both

    before = snapshot_refs(pool, vm)
    dry = sweep_pool(pool.client, JOBS, now=time.time(), dry_run=True)
    assert snapshot_refs(pool, vm) == before
    assert [(a.why, a.action) for a in dry] == [
        ("beyond its schedule's snapshot retention", "would be destroyed")
    ]

    done = sweep_pool(pool.client, JOBS, now=time.time())
    assert [a.action for a in done] == ["destroyed"]
    [left] = snapshot_refs(pool, vm)
    assert pool.client.call("VM.get_uuid", left) == second.snapshot_uuid
    with pytest.raises(Exception, match="UUID_INVALID"):
        pool.client.call("VM.get_by_uuid", first.snapshot_uuid)
    assert sweep_pool(pool.client, JOBS, now=time.time()) == []  # nothing left to do


def test_a_job_xoweb_no_longer_has_keeps_only_its_newest_group(pool, remotes):
    vm = pool.make_vm("gone-job", disks=2)  # halted: per-disk snapshot VDIs
    for _ in range(3):
        pool.write(vm, 0)
        pool.backup(vm, remotes, **KEEP_ALL)
    assert len(disk_snapshots(pool, vm)) == 6
    done = sweep_pool(pool.client, {}, now=time.time())
    assert [a.why for a in done] == ["of a job xoweb no longer has (its newest is kept)"] * 2
    assert len(disk_snapshots(pool, vm)) == 2


def test_leftovers_of_a_dead_run_go_once_old_and_busy_vms_are_left_alone(pool, remotes):
    vm = pool.vm("vm-00000")["uuid"]
    pool.backup(vm, remotes)  # the newest exported group: kept
    # A run that died after its snapshot: tagged, never exported (an old one) ...
    dead = pool.client.call("VM.snapshot", pool.vm_ref(vm), "[xoweb nightly] dead run")
    marks = tags.snapshot_tags(
        job_id=JOB_ID, schedule_id=SCHEDULE_ID, vm_uuid=vm, timestamp="20200101T000000Z",
        chain_length=1,
    )  # fmt: skip
    tag(pool, "VM", dead, marks)
    # ... and one killed between the snapshot call and the tagging (pending, just now).
    tag(pool, "VM", pool.vm_ref(vm), {tags.PENDING: JOB_ID})
    pending = pool.client.call("VM.snapshot", pool.vm_ref(vm), "[xoweb nightly] killed")
    pool.client.call("VM.remove_from_other_config", pool.vm_ref(vm), tags.PENDING)
    # Another tool's snapshot and one made by hand: never looked at.
    xo = pool.client.call("VM.snapshot", pool.vm_ref(vm), "XO backup")
    tag(pool, "VM", xo, {"xo:backup:job": "x", "xo:backup:datetime": LONG_AGO})
    by_hand = pool.client.call("VM.snapshot", pool.vm_ref(vm), "before the upgrade")

    assert sweep_pool(pool.client, JOBS, busy={(JOB_ID, vm)}, now=time.time()) == []
    young = sweep_pool(pool.client, JOBS, now=time.time())
    assert [(a.why, a.action) for a in young] == [
        ("left by a run that did not finish", "destroyed")
    ]
    assert dead not in snapshot_refs(pool, vm)
    old = sweep_pool(pool.client, JOBS, now=time.time() + 7200)
    assert [a.why for a in old] == ["left by a run that did not finish"]
    assert pending not in snapshot_refs(pool, vm)
    assert {xo, by_hand} <= snapshot_refs(pool, vm)
    assert len(find_our_snapshots(pool.client)[(JOB_ID, vm)]) == 1


def test_a_checkpoint_goes_with_its_suspend_vdi(pool):
    vm = pool.vm("vm-00000")["uuid"]
    checkpoint = pool.client.call("VM.checkpoint", pool.vm_ref(vm), "[xoweb nightly] vm-00000")
    record = pool.client.call("VM.get_record", checkpoint)
    suspend = record["suspend_VDI"]
    assert record["power_state"] == "Suspended" and suspend != "OpaqueRef:NULL"
    marks = tags.snapshot_tags(
        job_id=JOB_ID, schedule_id=SCHEDULE_ID, vm_uuid=vm, timestamp="20200101T000000Z",
        chain_length=0,
    )  # fmt: skip
    tag(pool, "VM", checkpoint, marks)
    disks = [
        pool.client.call("VBD.get_VDI", vbd)
        for vbd in record["VBDs"]
        if pool.client.call("VBD.get_type", vbd) == "Disk"
    ]
    done = sweep_pool(pool.client, JOBS, now=time.time())
    assert [a.action for a in done] == ["destroyed"]
    for ref in [checkpoint, suspend, *disks]:
        with pytest.raises(Exception, match="HANDLE_INVALID"):
            pool.client.call("VM.get_record" if ref == checkpoint else "VDI.get_record", ref)
