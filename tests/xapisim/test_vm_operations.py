"""What a backup tool calls on VMs, VDIs and VBDs (docs/xapi.md §8.3-§8.8)."""

from __future__ import annotations

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, vm_by_name, vm_create_record

NULL = "OpaqueRef:NULL"


def test_vm_snapshot_record_looks_like_xapi(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")  # running, 3 disks (index 0), tools ISO in its CD drive
    source = x.VM.get_record(vm)
    x.VM.add_to_other_config(vm, "xo:backup", "yes")
    snap = x.VM.snapshot(vm, "nightly")
    record = x.VM.get_record(snap)
    assert record["is_a_snapshot"] is True
    assert record["is_a_template"] is True
    assert record["power_state"] == "Halted"
    assert record["snapshot_of"] == vm
    assert record["name_label"] == "nightly"
    assert record["snapshot_time"].value != "19700101T00:00:00Z"
    assert record["snapshot_info"] == {
        "power-state-at-snapshot": "Running",
        "disk-snapshot-type": "crash_consistent",
    }
    assert record["other_config"]["xo:backup"] == "yes"
    assert record["resident_on"] == NULL
    assert x.VM.get_snapshots(vm) == [snap]
    assert record["uuid"] != source["uuid"]
    # Disk VBDs point at fresh snapshot VDIs with an `owner` key; the CD keeps the ISO.
    source_vbds = {x.VBD.get_userdevice(v): x.VBD.get_record(v) for v in source["VBDs"]}
    for vbd in record["VBDs"]:
        vbd_record = x.VBD.get_record(vbd)
        original = source_vbds[vbd_record["userdevice"]]
        if vbd_record["type"] == "Disk":
            assert vbd_record["other_config"]["owner"] == ""
            vdi = x.VDI.get_record(vbd_record["VDI"])
            assert vdi["is_a_snapshot"] is True
            assert vdi["snapshot_of"] == original["VDI"]
            assert vbd_record["VDI"] in x.VDI.get_snapshots(original["VDI"])
            assert vdi["name_label"] == x.VDI.get_name_label(original["VDI"])
        else:
            assert vbd_record["VDI"] == original["VDI"]
    assert len(record["VBDs"]) == len(source["VBDs"])
    (vif,) = record["VIFs"]
    assert x.VIF.get_MAC(vif) == x.VIF.get_MAC(source["VIFs"][0])
    assert vif != source["VIFs"][0]


def test_vm_snapshot_ignore_vdis(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    disks = disk_vdis(session, vm)
    nobak = [vdi for vdi in disks if "[NOBAK]" in x.VDI.get_name_label(vdi)]
    assert nobak
    managed_before = len(x.VDI.get_all_records_where('field "managed" = "true"'))
    # ignore_vdis refs are not validated: a ref that names nothing is just not found.
    snap = x.VM.snapshot(vm, "partial", [*nobak, "OpaqueRef:not-a-vdi"])
    snap_disks = [x.VBD.get_VDI(v) for v in x.VM.get_VBDs(snap) if x.VBD.get_type(v) == "Disk"]
    assert len(snap_disks) == len(disks) - len(nobak)
    assert {x.VDI.get_snapshot_of(v) for v in snap_disks} == set(disks) - set(nobak)
    managed = x.VDI.get_all_records_where('field "managed" = "true"')
    assert len(managed) == managed_before + len(snap_disks)
    for vdi in nobak:
        assert x.VDI.get_snapshots(vdi) == []
    # CDs are dropped too when their VDI is listed (xapi_vm_clone.ml filters every VBD).
    cd = next(v for v in x.VM.get_VBDs(vm) if x.VBD.get_type(v) == "CD")
    iso = x.VBD.get_VDI(cd)
    no_cd = x.VM.snapshot(vm, "no cd", [iso])
    assert "CD" not in [x.VBD.get_type(v) for v in x.VM.get_VBDs(no_cd)]
    # Arguments past the defaulted ignore_vdis are accepted and ignored (docs/xapi.md §8.9).
    extra = x.VM.snapshot(vm, "a", [], "extra")
    assert x.VM.get_snapshot_of(extra) == vm
    with pytest.raises(XenAPI.Failure) as arity:
        x.VM.snapshot(vm)
    assert arity.value.details == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VM.snapshot", "2", "1"]


def test_checkpoint_needs_a_live_vm(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    halted = vm_by_name(session, "vm-00002")
    with pytest.raises(XenAPI.Failure) as failure:
        x.VM.checkpoint(halted, "cp")
    assert failure.value.details == [
        "VM_BAD_POWER_STATE",
        halted,
        "paused, suspended, running",
        "halted",
    ]
    running = vm_by_name(session, "vm-00001")
    checkpoint = x.VM.checkpoint(running, "cp")
    record = x.VM.get_record(checkpoint)
    assert record["power_state"] == "Suspended"
    assert record["is_a_snapshot"] is True
    assert x.VDI.get_type(record["suspend_VDI"]) == "suspend"
    assert x.VM.get_power_state(running) == "Running"


def test_power_cycle_and_errors(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00001")
    with pytest.raises(XenAPI.Failure) as start_running:
        x.VM.start(vm, False, False)
    assert start_running.value.details == ["VM_BAD_POWER_STATE", vm, "halted", "running"]
    with pytest.raises(XenAPI.Failure) as destroy_running:
        x.VM.destroy(vm)
    assert destroy_running.value.details == [
        "VM_BAD_POWER_STATE",
        vm,
        "halted, suspended",
        "running",
    ]
    x.VM.clean_shutdown(vm)
    assert x.VM.get_power_state(vm) == "Halted"
    assert x.VM.get_resident_on(vm) == NULL
    assert all(not x.VBD.get_currently_attached(v) for v in x.VM.get_VBDs(vm))
    with pytest.raises(XenAPI.Failure) as shutdown_halted:
        x.VM.clean_shutdown(vm)
    assert shutdown_halted.value.details == ["VM_BAD_POWER_STATE", vm, "running", "halted"]
    x.VM.start(vm, False, False)
    assert x.VM.get_power_state(vm) == "Running"
    assert x.VM.get_resident_on(vm) != NULL


def test_vm_destroy_keeps_the_disks(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    snap = x.VM.snapshot(vm, "to-delete")
    snap_vbds = x.VM.get_VBDs(snap)
    snap_disks = [x.VBD.get_VDI(v) for v in snap_vbds if x.VBD.get_type(v) == "Disk"]
    x.VM.destroy(snap)
    with pytest.raises(XenAPI.Failure) as gone:
        x.VM.get_record(snap)
    assert gone.value.details == ["HANDLE_INVALID", "VM", snap]
    for vbd in snap_vbds:
        with pytest.raises(XenAPI.Failure):
            x.VBD.get_record(vbd)
    for vdi in snap_disks:
        assert x.VDI.get_is_a_snapshot(vdi) is True
        assert x.VDI.get_VBDs(vdi) == []
    assert x.VM.get_snapshots(vm) == []
    for vdi in snap_disks:  # XO's order: the VDIs after the VM
        x.VDI.destroy(vdi)
        with pytest.raises(XenAPI.Failure) as destroyed:
            x.VDI.destroy(vdi)
        assert destroyed.value.details == ["HANDLE_INVALID", "VDI", vdi]


def test_vdi_snapshot_create_destroy_and_vbds(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    halted = vm_by_name(session, "vm-00002")
    disk = disk_vdis(session, halted)[0]
    snapshot = x.VDI.snapshot(disk)
    assert x.VDI.get_snapshot_of(snapshot) == disk
    assert x.VDI.get_is_a_snapshot(snapshot) is True
    assert x.VDI.snapshot(disk, {}) != snapshot  # driver_params may be given
    sr = x.VDI.get_SR(disk)
    new = x.VDI.create(
        {
            "name_label": "restore",
            "SR": sr,
            "virtual_size": str(8 * 1024**3),
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {"k": "v"},
        }
    )
    record = x.VDI.get_record(new)
    assert (record["virtual_size"], record["other_config"], record["SR"]) == (
        str(8 * 1024**3),
        {"k": "v"},
        sr,
    )
    assert new in x.SR.get_VDIs(sr)
    vbd = x.VBD.create(
        {
            "VM": halted,
            "VDI": new,
            "userdevice": "autodetect",
            "bootable": False,
            "mode": "RW",
            "type": "Disk",
            "empty": False,
            "other_config": {},
            "qos_algorithm_type": "",
            "qos_algorithm_params": {},
        }
    )
    assert x.VBD.get_userdevice(vbd) == "3" or x.VBD.get_userdevice(vbd).isdigit()
    assert vbd in x.VM.get_VBDs(halted) and vbd in x.VDI.get_VBDs(new)
    x.VBD.destroy(vbd)
    assert vbd not in x.VM.get_VBDs(halted)
    x.VDI.destroy(new)
    assert new not in x.SR.get_VDIs(sr)
    running = vm_by_name(session, "vm-00001")
    attached = disk_vdis(session, running)[0]
    with pytest.raises(XenAPI.Failure) as in_use:
        x.VDI.destroy(attached)
    assert in_use.value.details == ["VDI_IN_USE", attached, "destroy"]


def test_restore_shapes_clone_create_and_vifs(xapisim) -> None:
    """What a restore uses: VM.clone of a snapshot (writable disks with the snapshot's bytes),
    VM.create from a record, VIF.create / VIF.destroy."""
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    snap = x.VM.snapshot(vm, "base")
    restored = x.VM.clone(snap, "restored")
    record = x.VM.get_record(restored)
    assert (record["is_a_snapshot"], record["is_a_template"], record["power_state"]) == (
        False,
        True,
        "Halted",
    )
    assert record["snapshot_of"] == NULL and restored not in x.VM.get_snapshots(vm)
    for vbd in record["VBDs"]:
        if x.VBD.get_type(vbd) == "Disk":
            vdi = x.VBD.get_VDI(vbd)
            assert x.VDI.get_is_a_snapshot(vdi) is False and x.VDI.get_read_only(vdi) is False
    snap_disks = disk_vdis(session, snap)
    clone_disks = disk_vdis(session, restored)
    assert [xapisim.sim("vdi_sha256", v) for v in clone_disks] == [
        xapisim.sim("vdi_sha256", v) for v in snap_disks
    ]
    x.VM.set_is_a_template(restored, False)
    x.VM.start(restored, False, False)
    assert x.VM.get_power_state(restored) == "Running"
    with pytest.raises(XenAPI.Failure) as running:
        x.VM.clone(vm, "from-running")
    assert running.value.details == ["VM_BAD_POWER_STATE", vm, "halted", "running"]

    created = x.VM.create(
        {
            **vm_create_record(),
            "name_label": "from-record",
            "memory_static_max": "2147483648",
            "VCPUs_max": "4",
            "other_config": {"restored-from": "backup"},
            "power_state": "Running",
            "unknown": "x",
        }
    )
    record = x.VM.get_record(created)
    assert (record["name_label"], record["memory_static_max"], record["VCPUs_max"]) == (
        "from-record",
        "2147483648",
        "4",
    )
    seed = record["other_config"].get("mac_seed", "")  # added by VM.create, as XAPI does
    assert (record["power_state"], record["other_config"]) == (
        "Halted",
        {"restored-from": "backup", "mac_seed": seed},
    )
    assert len(seed) == 36
    network = x.network.get_all()[0]
    vif = x.VIF.create(
        {
            "VM": created,
            "network": network,
            "device": "0",
            "MAC": "aa:bb:cc:dd:ee:ff",
            "MTU": "1500",
            "other_config": {},
            "qos_algorithm_type": "",
            "qos_algorithm_params": {},
        }
    )
    assert x.VM.get_VIFs(created) == [vif] and vif in x.network.get_VIFs(network)
    assert x.VIF.get_MAC(vif) == "aa:bb:cc:dd:ee:ff"
    x.VIF.destroy(vif)
    assert x.VM.get_VIFs(created) == [] and vif not in x.network.get_VIFs(network)


def test_deleting_a_snapshot_the_way_xo_does(xapisim) -> None:
    """XO destroys the snapshot's Disk VDIs (VBDs with `owner`) first, then the VM."""
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    snap = x.VM.snapshot(vm, "old")
    owned = [
        x.VBD.get_VDI(vbd)
        for vbd in x.VM.get_VBDs(snap)
        if "owner" in x.VBD.get_other_config(vbd) and x.VBD.get_type(vbd) == "Disk"
    ]
    assert len(owned) == len(disk_vdis(session, vm))
    for vdi in owned:
        x.VDI.destroy(vdi)
    assert [x.VBD.get_type(v) for v in x.VM.get_VBDs(snap)] == ["CD"]
    x.VM.destroy(snap)
    assert x.VM.get_snapshots(vm) == []
    assert all(x.VDI.get_snapshots(v) == [] for v in disk_vdis(session, vm))


def test_memory_limits_and_allowed_operations(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00002")  # halted
    x.VM.set_memory_limits(vm, str(2**30), str(2**33), str(2**31), str(2**32))
    record = x.VM.get_record(vm)
    assert [
        record[f]
        for f in (
            "memory_static_min",
            "memory_dynamic_min",
            "memory_dynamic_max",
            "memory_static_max",
        )
    ] == [str(2**30), str(2**31), str(2**32), str(2**33)]
    with pytest.raises(XenAPI.Failure) as order:
        x.VM.set_memory_limits(vm, str(2**33), str(2**30), str(2**31), str(2**32))
    assert order.value.details == [
        "MEMORY_CONSTRAINT_VIOLATION",
        "Memory limits must satisfy: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max",
    ]
    x.VM.add_to_blocked_operations(vm, "start", "restored replica")
    x.VM.update_allowed_operations(vm)
    allowed = x.VM.get_allowed_operations(vm)
    assert "start" not in allowed and "snapshot" in allowed
