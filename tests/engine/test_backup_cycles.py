"""Backup cycles against the simulator over HTTP: fulls, deltas, a forced full, a full by
interval, a halted VM that starts running; every restore point restores exactly."""

from __future__ import annotations

import json

import pytest

from backups.engine import DiskMode, FullReason
from backups.engine.tags import tag_datetime

from .conftest import (
    assert_restores_exactly,
    job,
    referenced_files,
    schedule,
    visible_files,
)

pytestmark = pytest.mark.timeout(240)


def test_a_halted_then_running_vm_backs_up_and_every_point_restores_exactly(pool, remotes):
    vm_uuid = pool.make_vm("cycles", disks=3)
    vm_ref = pool.vm_ref(vm_uuid)
    data_disks = pool.disks(vm_ref)
    nobak_uuid = pool.client.call("VDI.get_uuid", data_disks[2])
    forced = schedule(id="6a1c2f0e-0000-4000-8000-0000000000b2", name="sunday", force_full=True)
    # Both schedules keep no snapshot beyond the base, so the daily one's is pruned when the
    # sunday one runs too (XO leaves it: vatesfr/xen-orchestra#8033).
    interval_job = job(
        full_interval=4, snapshot_retention_by_schedule={schedule().id: 0, forced.id: 0}
    )
    rounds = [
        # (schedule, expected mode of disk 0, reason code, power state)
        (schedule(), DiskMode.FULL, FullReason.FIRST_BACKUP, "Halted"),
        (schedule(), DiskMode.DELTA, None, "Halted"),
        (schedule(), DiskMode.DELTA, None, "Halted"),
        (forced, DiskMode.FULL, FullReason.FORCED_BY_SCHEDULE, "Halted"),
        (schedule(), DiskMode.DELTA, None, "Halted"),
        (schedule(), DiskMode.DELTA, None, "Halted"),
        (schedule(), DiskMode.DELTA, None, "Halted"),
        (schedule(), DiskMode.FULL, FullReason.FULL_INTERVAL, "Halted"),
        (schedule(), DiskMode.DELTA, None, "Running"),
        (schedule(), DiskMode.DELTA, None, "Running"),
    ]
    for number, (sched, mode, reason, power) in enumerate(rounds):
        if power == "Running" and pool.client.call("VM.get_power_state", vm_ref) == "Halted":
            pool.client.call("VM.start", vm_ref, False, False)
        if number:
            pool.write(vm_uuid, 0, blocks=2, seed=number)
            pool.write(vm_uuid, 2, blocks=1, seed=number)  # the [NOBAK] disk changes too
        outcome = pool.backup(vm_uuid, remotes, job=interval_job, schedule=sched)
        assert outcome.status == "success", outcome.error
        assert [disk.vdi_name for disk in outcome.disks] == ["cycles disk 0", "cycles disk 1"]
        assert outcome.disks[0].mode == mode, (number, outcome.disks[0].reason)
        assert outcome.disks[0].reason_code == reason
        assert outcome.skipped_disks == [
            (
                nobak_uuid,
                "disk 2 'cycles disk 2 [NOBAK]' is not backed up: its name contains [NOBAK]",
            )
        ]
        # The [NOBAK] disk is never snapshotted: halted (per-disk) and running (ignore_vdis).
        assert pool.client.call("VDI.get_snapshots", data_disks[2]) == []
        assert set(outcome.metadata) == {"r1", "r2"}
        # One group of ours stays on the pool: the newest exported one (the next base).
        ours = pool.our_snapshots(vm_uuid)
        assert {r["other_config"]["xoweb:backup:datetime"] for r in ours} == {
            tag_datetime(outcome.timestamp)
        }, (number, [(r["name_label"], r["other_config"]) for r in ours], outcome.warnings)
        assert all(r["other_config"]["xoweb:backup:exported"] == "true" for r in ours)
        kinds = {("VM" if "power_state" in r else "VDI") for r in ours}
        assert kinds == ({"VDI"} if power == "Halted" else {"VM", "VDI"})

    assert outcome.disks[1].reason.startswith("delta on ")
    for remote in remotes:
        backups = remote.list_backups(vm_uuid)
        assert len(backups) == len(rounds)
        assert all(nobak_uuid not in json.dumps(remote.read_metadata(b)) for b in backups)
        assert not any(nobak_uuid in path for path in visible_files(remote))
        assert visible_files(remote) == referenced_files(remote)
        assert assert_restores_exactly(pool, remote) == 2 * len(rounds)


def test_a_running_vm_is_snapshotted_with_ignore_vdis_and_named_for_people(pool, remotes):
    vm = pool.vm("vm-00000")  # the seeded pool's VM 0: three disks, the third [NOBAK], running
    assert vm["power_state"] == "Running"
    outcome = pool.backup(vm["uuid"], remotes)
    assert outcome.status == "success", outcome.error
    snapshot = pool.client.call("VM.get_record", pool.vm_ref(outcome.snapshot_uuid))
    assert snapshot["name_label"] == "[xoweb nightly] vm-00000"
    assert snapshot["is_a_snapshot"]
    tags = snapshot["other_config"]
    assert tags["xoweb:backup:job"] == job().id
    assert tags["xoweb:backup:schedule"] == schedule().id
    assert tags["xoweb:backup:vm"] == vm["uuid"]
    assert tags["xoweb:backup:deltaChainLength"] == "0"
    assert tags["xoweb:backup:exported"] == "true"
    assert "xoweb:backup:pending" not in tags
    live = pool.client.call("VM.get_other_config", pool.vm_ref(vm["uuid"]))
    assert not any(key.startswith("xoweb:") for key in live)
    # Two disks in the snapshot: the [NOBAK] one was ignored by VM.snapshot.
    disks = [
        pool.client.call("VBD.get_VDI", vbd)
        for vbd in snapshot["VBDs"]
        if pool.client.call("VBD.get_type", vbd) == "Disk"
    ]
    assert len(disks) == 2

    pool.write(vm["uuid"], 0, blocks=1)
    second = pool.backup(vm["uuid"], remotes)
    assert [disk.mode for disk in second.disks] == [DiskMode.DELTA, DiskMode.DELTA]
    assert second.disks[1].bytes < second.disks[0].bytes  # disk 1 did not change
    # The previous snapshot VM is gone (snapshot retention 0 keeps only the base).
    with pytest.raises(Exception, match="UUID_INVALID"):
        pool.client.call("VM.get_by_uuid", outcome.snapshot_uuid)
    for remote in remotes:
        assert assert_restores_exactly(pool, remote) == 4


def test_the_metadata_is_xo_format_2_with_our_fields(pool, remotes):
    vm = pool.vm("vm-00000")
    first = pool.backup(vm["uuid"], remotes)
    pool.write(vm["uuid"], 0)
    second = pool.backup(vm["uuid"], remotes)
    data = remotes[0].read_metadata(second.metadata["r1"])
    for key in (
        "version",
        "jobId",
        "scheduleId",
        "mode",
        "timestamp",
        "vm",
        "vmSnapshot",
        "size",
        "tags",
        "vbds",
        "vdis",
        "vifs",
        "vhds",
        "isVhdDifferencing",
        "vtpms",
    ):
        assert key in data, key
    assert data["version"] == "2.0.0"
    assert data["mode"] == "delta"
    assert data["vm"]["uuid"] == vm["uuid"]
    assert isinstance(data["vm"]["memory_static_max"], int)
    assert data["vmSnapshot"]["uuid"] == second.snapshot_uuid
    for ref, path in data["vhds"].items():
        record = data["vdis"][ref]
        assert path == f"vdis/{job().id}/{record['$snapshot_of$uuid']}/{second.timestamp}.vhd"
        assert data["isVhdDifferencing"][ref] is True
        assert record["other_config"]["xo:base_delta_vdi"] in {
            disk.snapshot_vdi_uuid for disk in first.disks
        }
        ours = data["xoweb"]["disks"][ref]
        disk = next(d for d in second.disks if d.snapshot_vdi_uuid == record["uuid"])
        assert ours == {
            "sha256": disk.sha256,
            "mode": "delta",
            "reason": disk.reason,
            "reasonCode": None,
            "size": disk.bytes,
        }
        assert (
            data["vbds"][next(r for r, v in data["vbds"].items() if v["VDI"] == ref)]["type"]
            == "Disk"
        )
    assert data["xoweb"]["jobMode"] == "delta"
    assert data["size"] == sum(disk.bytes for disk in second.disks)
    (vif,) = data["vifs"].values()
    assert vif["$network$name_label"] == "Pool-wide network associated with eth0"
    # The SHA-256 recorded is the file's.
    import hashlib

    for disk in second.disks:
        path = remotes[1].path(disk.files["r2"])
        assert hashlib.sha256(path.read_bytes()).hexdigest() == disk.sha256
