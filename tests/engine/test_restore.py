"""Restores: a whole VM as a new VM, a disk to a VHD file, and the errors a person sees."""

from __future__ import annotations

import hashlib

import pytest

from backups.engine import RestoreError, restore_disk_to_file, restore_disk_to_sr, restore_vm

from .conftest import RecordingProgress, libvhdi_sha256

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def backed_up(pool, remotes):
    vm = pool.vm("vm-00000")
    pool.backup(vm["uuid"], remotes)
    pool.write(vm["uuid"], 0, blocks=2, seed=4)
    pool.write(vm["uuid"], 1, blocks=1, seed=5)
    outcome = pool.backup(vm["uuid"], remotes)
    return vm, outcome, remotes[0].list_backups(vm["uuid"])[-1]


def test_a_whole_vm_comes_back_as_a_new_vm(pool, remotes, backed_up):
    vm, outcome, entry = backed_up
    client = pool.client
    progress = RecordingProgress()
    new_uuid = restore_vm(client, remotes[0], entry.path, pool.default_sr(), progress=progress)
    assert new_uuid != vm["uuid"]
    record = client.call("VM.get_record", client.call("VM.get_by_uuid", new_uuid))
    when = entry.datetime.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert record["name_label"] == f"vm-00000 (restored {when})"
    assert "restored from backup" in record["tags"]
    assert record["power_state"] == "Halted"
    assert not record["is_a_template"] and not record["is_a_snapshot"]
    assert not any(key.startswith(("xoweb:", "xo:backup:")) for key in record["other_config"])
    assert record["memory_static_max"] == vm["memory_static_max"]
    disks = {}
    for vbd_ref in record["VBDs"]:
        vbd = client.call("VBD.get_record", vbd_ref)
        assert vbd["type"] == "Disk"
        disks[vbd["userdevice"]] = (vbd["bootable"], pool.sim.sim("vdi_sha256", vbd["VDI"]))
    by_uuid = {disk.vdi_uuid: disk for disk in outcome.disks}
    live = pool.disks(pool.vm_ref(vm["uuid"]))
    expected = {}
    for position, vdi in enumerate(live[:2]):
        uuid = client.call("VDI.get_uuid", vdi)
        expected[by_uuid[uuid].userdevice] = (position == 0, pool.expected[(entry.timestamp, uuid)])
    assert disks == expected  # the [NOBAK] disk was not backed up: not restored either
    (vif_ref,) = record["VIFs"]
    vif = client.call("VIF.get_record", vif_ref)
    original = client.call("VIF.get_record", vm["VIFs"][0])
    assert vif["network"] == original["network"] and vif["MAC"] == original["MAC"]
    assert [node.kind for node in progress.walk() if node.kind] == ["restore", "restore"]


def test_a_disk_restored_as_a_vhd_file_reads_back_exactly(pool, remotes, backed_up, tmp_path):
    _vm, outcome, entry = backed_up
    disk = outcome.disks[0]
    target = tmp_path / "disk.vhd"
    restored = restore_disk_to_file(remotes[1], entry.path, disk.vdi_uuid, target, fmt="vhd")
    assert restored.path == target and restored.size == target.stat().st_size
    assert restored.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    assert libvhdi_sha256([target]) == pool.expected[(entry.timestamp, disk.vdi_uuid)]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_restore_errors_are_named(pool, remotes, backed_up, tmp_path):
    _vm, outcome, entry = backed_up
    disk = outcome.disks[0]
    with pytest.raises(RestoreError, match=f"holds no disk nope .it holds: {disk.vdi_uuid}, "):
        restore_disk_to_file(remotes[0], entry.path, "nope", tmp_path / "x")
    with pytest.raises(RestoreError, match="format 'qcow2' is not one of raw, vhd"):
        restore_disk_to_file(remotes[0], entry.path, disk.vdi_uuid, tmp_path / "x", fmt="qcow2")
    with pytest.raises(RestoreError, match=f"the folder {tmp_path}/missing does not exist"):
        restore_disk_to_file(remotes[0], entry.path, disk.vdi_uuid, tmp_path / "missing" / "x")
    with pytest.raises(RestoreError, match="no SR with uuid 00000000-"):
        restore_disk_to_sr(
            pool.client,
            remotes[0],
            entry.path,
            disk.vdi_uuid,
            "00000000-0000-4000-8000-000000000000",
        )
    # A broken chain: the full under the delta is gone.
    base = remotes[0].path(disk.files["r1"]).parent
    oldest = sorted(base.glob("*.vhd"))[0]
    oldest.unlink()
    with pytest.raises(
        RestoreError, match=r"the disk's VHD chain on remote 'nas1' cannot be read: .*not found"
    ):
        restore_disk_to_file(remotes[0], entry.path, disk.vdi_uuid, tmp_path / "x")
    assert not (tmp_path / "x").exists()
