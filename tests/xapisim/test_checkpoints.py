"""Checkpoints and clones as xapi_vm_clone.ml makes them (docs/xapi.md §8.8, §8.11): the
checkpoint's VBDs stay attached, `VM.destroy` keeps its suspend VDI, a clone of a checkpoint
gets its own suspend VDI, and clones get new MAC addresses while snapshots keep them."""

from __future__ import annotations

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, vm_by_name

NULL = "OpaqueRef:NULL"


def failure(call, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        call(*args)
    return raised.value.details


@pytest.fixture
def running(xapisim_factory):
    sim = xapisim_factory(vms=2, disk_size="16M")
    session = sim.session()
    return sim, session, vm_by_name(session, "vm-00001")


def test_a_checkpoints_disks_stay_attached_until_vm_destroy(running) -> None:
    _sim, session, vm = running
    x = session.xenapi
    source = {x.VBD.get_userdevice(v): x.VBD.get_record(v) for v in x.VM.get_VBDs(vm)}
    checkpoint = x.VM.checkpoint(vm, "cp")
    assert x.VM.get_power_state(checkpoint) == "Suspended"
    for vbd in x.VM.get_VBDs(checkpoint):
        record = x.VBD.get_record(vbd)
        original = source[record["userdevice"]]
        assert (record["currently_attached"], record["device"]) == (
            original["currently_attached"],
            original["device"],
        )
    disk = disk_vdis(session, checkpoint)[0]
    disk_vbd = next(v for v in x.VM.get_VBDs(checkpoint) if x.VBD.get_VDI(v) == disk)
    assert x.VBD.get_currently_attached(disk_vbd) is True
    assert failure(x.VDI.destroy, disk) == ["VDI_IN_USE", disk, "destroy"]
    assert failure(x.VBD.destroy, disk_vbd) == [
        "OPERATION_NOT_ALLOWED",
        f"VBD '{x.VBD.get_uuid(disk_vbd)}' still attached to '{x.VM.get_uuid(checkpoint)}'",
    ]
    suspend_vdi = x.VM.get_suspend_VDI(checkpoint)
    assert x.VDI.get_type(suspend_vdi) == "suspend"
    x.VM.destroy(checkpoint)  # removes the VBDs, attached or not; never a VDI
    assert x.VDI.get_VBDs(disk) == []
    x.VDI.destroy(disk)
    assert x.VDI.get_type(suspend_vdi) == "suspend"  # left behind: destroy it yourself
    x.VDI.destroy(suspend_vdi)
    # A snapshot (Halted) gets its VBDs detached.
    snapshot = x.VM.snapshot(vm, "snap")
    assert not any(x.VBD.get_currently_attached(v) for v in x.VM.get_VBDs(snapshot))


def test_a_clone_of_a_checkpoint_owns_its_suspend_vdi(running) -> None:
    sim, session, vm = running
    x = session.xenapi
    checkpoint = x.VM.checkpoint(vm, "cp")
    memory = x.VM.get_suspend_VDI(checkpoint)
    clone = x.VM.clone(checkpoint, "resumed elsewhere")
    assert x.VM.get_power_state(clone) == "Suspended"
    copy = x.VM.get_suspend_VDI(clone)
    assert copy not in (NULL, memory)
    assert x.VDI.get_type(copy) == "suspend"
    x.VM.destroy(clone)
    x.VDI.destroy(copy)
    assert x.VDI.get_type(memory) == "suspend"  # the checkpoint's memory is intact
    assert x.VM.get_suspend_VDI(checkpoint) == memory
    assert sim.sim("vdi_sha256", memory)


def test_clones_get_new_macs_snapshots_keep_them(running) -> None:
    _sim, session, vm = running
    x = session.xenapi
    mac = x.VIF.get_MAC(x.VM.get_VIFs(vm)[0])
    snapshot = x.VM.snapshot(vm, "snap")
    assert [x.VIF.get_MAC(v) for v in x.VM.get_VIFs(snapshot)] == [mac]
    clone = x.VM.clone(snapshot, "restored")
    (clone_mac,) = [x.VIF.get_MAC(v) for v in x.VM.get_VIFs(clone)]
    assert clone_mac != mac and len(clone_mac.split(":")) == 6
    assert "mac_seed" in x.VM.get_other_config(clone)
    assert "mac_seed" not in x.VM.get_other_config(snapshot)
    # The snapshot became the VM's parent; the clone is a new top-level VM.
    assert x.VM.get_parent(vm) == snapshot and x.VM.get_parent(clone) == NULL
