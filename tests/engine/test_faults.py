"""Faults: after each, no metadata for the broken backup, no file under a real name that no
metadata names, no snapshot of ours left after the next run, the next run succeeds, and every
earlier restore point still restores exactly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from backups.engine import DiskMode, FullReason, RestoreError, restore_disk_to_sr
from backups.engine.tags import tag_datetime
from pools.xapi import XapiClient, find_master
from tests.fixtures.xapisim import REPO

from .conftest import (
    Cancelled,
    RecordingProgress,
    assert_restores_exactly,
    immutable,
    job,
    referenced_files,
    schedule,
    visible_files,
)

pytestmark = pytest.mark.timeout(180)


def assert_clean_after_failure(pool, vm, remotes, committed: int) -> None:
    for remote in remotes:
        assert len(remote.list_backups(vm)) == committed
        assert visible_files(remote) == referenced_files(remote)
        assert not (remote.path(f"xo-vm-backups/{vm}.lock")).exists()


def assert_next_run_recovers(pool, vm, remotes, committed: int, **options):
    outcome = pool.backup(vm, remotes, **options)
    assert outcome.status == "success", outcome.error
    ours = pool.our_snapshots(vm)
    assert {r["other_config"].get("xoweb:backup:datetime") for r in ours} == {
        tag_datetime(outcome.timestamp)
    }, "a snapshot of the broken run is left"
    for remote in remotes:
        assert len(remote.list_backups(vm)) == committed + 1
        assert visible_files(remote) == referenced_files(remote)
        assert_restores_exactly(pool, remote)
    return outcome


def test_an_export_cut_halfway(pool, remotes):
    vm = pool.make_vm("cut", disks=2)
    pool.backup(vm, remotes)
    pool.write(vm, 0, blocks=3, seed=5)
    pool.sim.sim("cut_export_after", str(3 * 2**20))
    outcome = pool.backup(vm, remotes)
    assert outcome.status == "failed"
    assert "disk 0 'cut disk 0'" in outcome.error
    assert "did not arrive whole" in outcome.error
    assert "VDI_IO_ERROR" in outcome.error
    assert outcome.metadata == {}
    assert_clean_after_failure(pool, vm, remotes, committed=1)
    assert len(pool.our_snapshots(vm)) == 2  # only the first backup's (the base) is left
    after = assert_next_run_recovers(pool, vm, remotes, committed=1)
    assert after.disks[0].mode == DiskMode.DELTA


def test_a_snapshot_that_fails(pool, remotes):
    vm = pool.vm("vm-00000")["uuid"]
    pool.backup(vm, remotes)
    pool.sim.sim(
        "fail_next",
        "Async.VM.snapshot",
        ["SR_BACKEND_FAILURE_44", "", "There is insufficient space"],
    )
    outcome = pool.backup(vm, remotes)
    assert outcome.status == "failed"
    assert outcome.error == (
        "the pool could not snapshot VM 'vm-00000': XAPI error SR_BACKEND_FAILURE_44  "
        "There is insufficient space"
    )
    assert_clean_after_failure(pool, vm, remotes, committed=1)
    live = pool.client.call("VM.get_other_config", pool.vm_ref(vm))
    assert "xoweb:backup:pending" not in live
    assert_next_run_recovers(pool, vm, remotes, committed=1)


def test_a_failed_disk_snapshot_of_a_halted_vm_leaves_nothing(pool, remotes):
    vm = pool.make_vm("halted-fail", disks=2)
    pool.sim.sim("fail_next", "Async.VDI.snapshot", ["SR_FULL", "16777216", "0"])
    outcome = pool.backup(vm, remotes)
    assert outcome.status == "failed"
    assert "SR_FULL" in outcome.error
    assert pool.our_snapshots(vm) == []
    for vdi in pool.disks(pool.vm_ref(vm)):
        assert pool.client.call("VDI.get_snapshots", vdi) == []
        assert "xoweb:backup:pending" not in pool.client.call("VDI.get_other_config", vdi)
    assert_next_run_recovers(pool, vm, remotes, committed=0)


def test_a_pool_without_ignore_vdis_snapshots_all_then_drops_nobak(pool, remotes):
    vm = pool.vm("vm-00000")
    nobak = pool.disks(pool.vm_ref(vm["uuid"]))[2]
    assert "[NOBAK]" in pool.client.call("VDI.get_name_label", nobak)
    # What a pool older than API 21.4.0 answers to the 3-argument VM.snapshot (docs/xapi.md §8.8).
    pool.sim.sim(
        "fail_next",
        "Async.VM.snapshot",
        ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.snapshot", "2", "3"],
    )
    progress = RecordingProgress()
    outcome = pool.backup(vm["uuid"], remotes, progress=progress)
    assert outcome.status == "success", outcome.error
    assert any("ignore_vdis" in message for node in progress.walk() for message in node.infos)
    assert [disk.vdi_name for disk in outcome.disks] == ["vm-00000 disk 0", "vm-00000 disk 1"]
    assert pool.client.call("VDI.get_snapshots", nobak) == []  # destroyed at once
    snapshot = pool.client.call("VM.get_record", pool.vm_ref(outcome.snapshot_uuid))
    disk_vbds = [v for v in snapshot["VBDs"] if pool.client.call("VBD.get_type", v) == "Disk"]
    assert len(disk_vbds) == 2
    for remote in remotes:
        assert assert_restores_exactly(pool, remote) == 2


def test_a_remote_that_becomes_read_only_mid_run_is_dropped_and_the_other_commits(pool, remotes):
    vm = pool.make_vm("readonly", disks=2)
    pool.backup(vm, remotes)
    pool.write(vm, 0, blocks=2, seed=3)
    progress = RecordingProgress()
    frozen = []

    def freeze(_step):
        if not frozen:
            frozen.append(immutable(remotes[0].path(f"xo-vm-backups/{vm}")))
            frozen[0].__enter__()

    progress.hooks["transfer"] = freeze
    try:
        outcome = pool.backup(vm, remotes, progress=progress)
    finally:
        frozen[0].__exit__(None, None, None)
    assert outcome.status == "partial"
    assert set(outcome.metadata) == {"r2"}
    assert set(outcome.failed_remotes) == {"r1"}
    assert "remote 'nas1'" in outcome.failed_remotes["r1"]
    assert "Operation not permitted" in outcome.failed_remotes["r1"]
    assert len(remotes[0].list_backups(vm)) == 1
    assert len(remotes[1].list_backups(vm)) == 2
    for remote in remotes:
        assert visible_files(remote) == referenced_files(remote)
    # The next run: nas1 lacks the base, so the changed disk goes full to both remotes.
    after = pool.backup(vm, remotes)
    assert after.status == "success", after.error
    assert [(d.mode, d.reason_code) for d in after.disks] == [
        (DiskMode.FULL, FullReason.BASE_BACKUP_MISSING),
        (DiskMode.FULL, FullReason.BASE_BACKUP_MISSING),
    ]
    assert f"{outcome.timestamp}.vhd is missing on remote 'nas1'" in after.disks[0].reason
    for remote in remotes:
        assert_restores_exactly(pool, remote)


def test_a_failover_of_the_master_mid_run(xapisim_factory, tmp_path, remotes):
    from .conftest import Pool

    sim = xapisim_factory(vms=1, hosts=2, disk_size="16M")
    client = XapiClient(sim.url, "root", sim.password, timeout=5)
    client.login()
    pool = Pool(sim, client, tmp_path)
    vm = pool.make_vm("failover", disks=2)
    pool.backup(vm, remotes)
    pool.write(vm, 0, blocks=4, seed=2)
    hosts = client.get_all_records("host")
    member = next(ref for ref, host in hosts.items() if host["name_label"] == "xapisim-host-1")
    progress = RecordingProgress()
    progress.hooks["transfer"] = lambda _step: sim.sim("failover", member)
    sim.sim("set_rate_limit", str(16 * 2**20))
    outcome = pool.backup(vm, remotes, progress=progress)
    assert outcome.status == "failed"
    assert outcome.error.startswith("the export of disk 0 'failover disk 0' of VM 'failover' ")
    assert f"connection refused by http://127.0.0.1:{sim.port}" in outcome.error
    assert outcome.metadata == {}
    for remote in remotes:
        assert len(remote.list_backups(vm)) == 1
        assert visible_files(remote) == referenced_files(remote)
    sim.sim("set_rate_limit", "0")
    # The next run logs in to the new master (found as the watcher finds it).
    urls = [sim.url, *sim.member_urls]
    pool.client = find_master(urls, lambda url: XapiClient(url, "root", sim.password, timeout=5))
    assert_next_run_recovers(pool, vm, remotes, committed=1)


def test_a_lock_held_by_a_live_run_fails_the_vm_and_touches_nothing(pool, remotes):
    vm = pool.make_vm("locked", disks=1)
    other = remotes[1].lock(vm, holder="run 41 of job weekly", lease=60, heartbeat=0)
    with other:
        outcome = pool.backup(vm, remotes)
    assert outcome.status == "failed"
    assert "is held by run 41 of job weekly" in outcome.error
    assert "remote 'nas2'" in outcome.error
    assert pool.our_snapshots(vm) == []
    assert not remotes[0].path(f"xo-vm-backups/{vm}.lock").exists()


def test_a_cancel_passes_through_after_the_clean_up(pool, remotes):
    vm = pool.make_vm("cancel", disks=2)
    progress = RecordingProgress()
    progress.cancel_after = 1
    with pytest.raises(Cancelled):
        pool.backup(vm, remotes, progress=progress)
    assert pool.our_snapshots(vm) == []
    assert_clean_after_failure(pool, vm, remotes, committed=0)
    for remote in remotes:
        assert not [p for p in remote.root.rglob("*.partial")]


def test_sr_full_on_restore_names_the_sr_and_creates_nothing(pool, remotes):
    vm = pool.make_vm("srfull", disks=1)
    outcome = pool.backup(vm, remotes)
    entry = remotes[0].list_backups(vm)[-1]
    sr = pool.default_sr()
    before = len(pool.client.call("SR.get_VDIs", pool.client.call("SR.get_by_uuid", sr)))
    pool.sim.sim("fail_next", "VDI.create", ["SR_FULL", str(16 * 2**20), str(2**20)])
    with pytest.raises(RestoreError) as caught:
        restore_disk_to_sr(pool.client, remotes[0], entry.path, outcome.disks[0].vdi_uuid, sr)
    assert str(caught.value) == (
        f"SR 'Shared storage' has no room for a disk of {16 * 2**20} bytes (SR_FULL: "
        f"{16 * 2**20} bytes requested, {2**20} at most): free space there or choose another "
        "SR; nothing was created"
    )
    # The same fault during the import itself: the new disk is destroyed again.
    # Queued twice: the client's empty redirect probe (as XO's) meets the first one.
    for _probe_then_import in range(2):
        pool.sim.sim("fail_next", "import_raw_vdi", ["SR_FULL", str(16 * 2**20), str(2**20)])
    with pytest.raises(RestoreError, match="has no room for a disk"):
        restore_disk_to_sr(pool.client, remotes[0], entry.path, outcome.disks[0].vdi_uuid, sr)
    after = len(pool.client.call("SR.get_VDIs", pool.client.call("SR.get_by_uuid", sr)))
    assert after == before
    assert_restores_exactly(pool, remotes[0])


def test_a_process_killed_mid_transfer(pool, remotes, tmp_path):
    vm = pool.make_vm("killed", disks=2)
    pool.backup(vm, remotes)
    pool.write(vm, 0, blocks=6, seed=11)
    pool.sim.sim("set_rate_limit", str(4 * 2**20))
    options = {
        "url": pool.sim.url,
        "password": pool.sim.password,
        "vm": vm,
        "remotes": [[r.remote_id, r.name, str(r.root)] for r in remotes],
        "job": {"id": job().id, "name": job().name, "mode": "delta"},
        "schedule": {"id": schedule().id, "name": schedule().name},
        "lease": 2.0,
        "heartbeat": 0.5,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.run_backup", json.dumps(options)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "transfer started"
        deadline = time.monotonic() + 20
        while not any(p.stat().st_size > 2**20 for r in remotes for p in r.root.rglob("*.partial")):
            assert time.monotonic() < deadline, "the transfer never wrote a MiB"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    pool.sim.sim("set_rate_limit", "0")
    for remote in remotes:
        assert len(remote.list_backups(vm)) == 1
        assert visible_files(remote) == referenced_files(remote)
        assert [p.name[0] for p in remote.root.rglob("*.partial")] == ["."]
        assert remote.path(f"xo-vm-backups/{vm}.lock").exists()  # the dead run's lease
    assert len(pool.our_snapshots(vm)) > 2  # the killed run's snapshot is still there
    time.sleep(2.1)  # its lease ends: the holder stopped beating
    after = assert_next_run_recovers(pool, vm, remotes, committed=1)
    assert after.disks[0].mode == DiskMode.DELTA


def test_a_remote_that_cannot_be_written_from_the_start_is_dropped(pool, remotes):
    vm = pool.make_vm("unwritable", disks=1)
    remotes[0].root.mkdir()
    with immutable(remotes[0].root):
        outcome = pool.backup(vm, remotes)
    assert outcome.status == "partial"
    assert set(outcome.metadata) == {"r2"}
    assert outcome.failed_remotes["r1"].startswith(f"remote 'nas1' ({remotes[0].root}): cannot ")
    assert outcome.failed_remotes["r1"].endswith("Operation not permitted")
    assert_restores_exactly(pool, remotes[1])
    # Both remotes unusable: the VM fails with both reasons, and nothing is left on the pool.
    remotes[1].root.mkdir(exist_ok=True)
    with immutable(remotes[0].root), immutable(remotes[1].root / "xo-vm-backups"):
        failed = pool.backup(vm, remotes)
    assert failed.status == "failed"
    assert failed.error.startswith("no remote is left to write to: remote 'nas1'")
    assert "remote 'nas2'" in failed.error
    assert len(pool.our_snapshots(vm)) == 1  # the first backup's base only


def test_a_snapshot_that_cannot_be_marked_exported_keeps_the_backup(pool, remotes):
    vm = pool.vm("vm-00000")["uuid"]
    pool.backup(vm, remotes)
    pool.sim.sim("fail_next", "VDI.add_to_other_config", ["OPERATION_NOT_ALLOWED", "busy"])
    outcome = pool.backup(vm, remotes)
    assert outcome.status == "success"
    assert outcome.warnings == [
        "the snapshot could not be marked exported: XAPI error OPERATION_NOT_ALLOWED busy"
    ]
    assert set(outcome.metadata) == {"r1", "r2"}
    after = pool.backup(vm, remotes)  # the unmarked snapshot is no base: a full, saying why
    assert after.status == "success", after.error
    assert after.disks[0].reason_code == FullReason.BASE_SNAPSHOT_GONE
    for remote in remotes:
        assert len(remote.list_backups(vm)) == 3
        assert_restores_exactly(pool, remote)


def test_a_pool_older_than_xapi_21_4_for_real(pool, remotes):
    pool.sim.sim("set_api_version", "21.3.0")
    vm = pool.vm("vm-00000")
    nobak = pool.disks(pool.vm_ref(vm["uuid"]))[2]
    outcome = pool.backup(vm["uuid"], remotes)
    assert outcome.status == "success", outcome.error
    assert [disk.vdi_name for disk in outcome.disks] == ["vm-00000 disk 0", "vm-00000 disk 1"]
    assert pool.client.call("VDI.get_snapshots", nobak) == []
    for remote in remotes:
        assert assert_restores_exactly(pool, remote) == 2


def test_a_full_sr_on_restore_for_real(pool, remotes):
    vm = pool.make_vm("fullsr", disks=1)
    outcome = pool.backup(vm, remotes)
    entry = remotes[0].list_backups(vm)[-1]
    sr_uuid = pool.default_sr()
    sr = pool.client.call("SR.get_by_uuid", sr_uuid)
    pool.sim.sim("sr_fill", sr, "1M")
    managed = [
        v for v in pool.client.call("SR.get_VDIs", sr) if pool.client.call("VDI.get_managed", v)
    ]
    with pytest.raises(RestoreError) as caught:
        restore_disk_to_sr(pool.client, remotes[0], entry.path, outcome.disks[0].vdi_uuid, sr_uuid)
    assert str(caught.value).startswith(
        f"SR 'Shared storage' has no room for a disk of {16 * 2**20} bytes (SR_FULL: "
    )
    assert str(caught.value).endswith("free space there or choose another SR; nothing was created")
    after = [
        v for v in pool.client.call("SR.get_VDIs", sr) if pool.client.call("VDI.get_managed", v)
    ]
    assert sorted(after) == sorted(managed)
