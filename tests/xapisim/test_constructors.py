"""Constructor records and `VBD.create`'s checks, as XAPI's generated dispatcher and xapi_vbd.ml
make them (docs/xapi.md §8.9): what a restore builds must pass on a real pool."""

from __future__ import annotations

import re

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, vm_by_name, vm_create_record

NULL = "OpaqueRef:NULL"


def field_not_found(name: str) -> list[str]:
    return ["INTERNAL_ERROR", f'Server_helpers.Dispatcher_FieldNotFound("{name}")']


def vdi_record(sr: str, **fields) -> dict:
    return {
        "SR": sr,
        "virtual_size": str(4 * 1024 * 1024),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {},
        **fields,
    }


def vbd_record(vm: str, vdi: str, **fields) -> dict:
    return {
        "VM": vm,
        "VDI": vdi,
        "userdevice": "autodetect",
        "bootable": False,
        "mode": "RW",
        "type": "Disk",
        "empty": False,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
        **fields,
    }


def failure(call, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        call(*args)
    return raised.value.details


@pytest.fixture
def small(xapisim_factory):
    sim = xapisim_factory(vms=3, disk_size="16M")
    session = sim.session()
    return sim, session, session.xenapi


def test_each_field_without_a_default_is_required(small) -> None:
    """The first missing field, in the datamodel's order, is named; defaulted ones may go."""
    _sim, session, x = small
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vm = vm_by_name(session, "vm-00002")
    network = x.network.get_all()[0]
    assert failure(x.VDI.create, {}) == field_not_found("SR")
    for name in ("virtual_size", "type", "sharable", "read_only", "other_config"):
        record = vdi_record(sr)
        del record[name]
        assert failure(x.VDI.create, record) == field_not_found(name)
    vdi = x.VDI.create(vdi_record(sr))  # name_label, sm_config, tags… have defaults
    assert x.VDI.get_name_label(vdi) == ""
    for name in ("VM", "userdevice", "empty", "qos_algorithm_type", "qos_algorithm_params"):
        record = vbd_record(vm, vdi)
        del record[name]
        assert failure(x.VBD.create, record) == field_not_found(name)
    vif = {
        "device": "1",
        "network": network,
        "VM": vm,
        "MAC": "aa:bb:cc:00:00:01",
        "MTU": "1500",
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }
    for name in ("device", "MAC", "MTU", "qos_algorithm_params"):
        assert failure(x.VIF.create, {k: v for k, v in vif.items() if k != name}) == (
            field_not_found(name)
        )
    assert x.VIF.get_MAC(x.VIF.create(vif)) == "aa:bb:cc:00:00:01"
    assert failure(x.VM.create, {"name_label": "bare"}) == field_not_found("user_version")
    for name in ("affinity", "memory_static_min", "PV_legacy_args", "HVM_boot_params"):
        record = vm_create_record()
        del record[name]
        assert failure(x.VM.create, record) == field_not_found(name)
    created = x.VM.create(vm_create_record(name_label="restored"))
    record = x.VM.get_record(created)
    assert (record["power_state"], record["blocked_operations"]) == ("Halted", {})
    assert record["actions_after_softreboot"] == "soft_reboot"  # a defaulted field


def test_vbd_create_checks_in_xapis_order(small) -> None:
    _sim, session, x = small
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    halted = vm_by_name(session, "vm-00002")  # disk at 0, empty CD drive at 3
    assert len(disk_vdis(session, halted)) == 1
    redo_log = x.VDI.create(vdi_record(sr, type="redo_log"))
    assert failure(x.VBD.create, vbd_record(halted, redo_log)) == [
        "VDI_INCOMPATIBLE_TYPE",
        redo_log,
        "redo_log",
    ]
    iso = next(v for v, r in x.VDI.get_all_records().items() if r["is_tools_iso"])
    assert failure(x.VBD.create, vbd_record(halted, iso, type="CD", mode="RW")) == [
        "VBD_CDS_MUST_BE_READONLY"
    ]
    assert failure(x.VBD.create, vbd_record(halted, NULL, empty=True)) == [
        "VBD_NOT_REMOVABLE_MEDIA",
        "in constructor",
    ]
    read_only = x.VDI.create(vdi_record(sr, read_only=True))
    assert failure(x.VBD.create, vbd_record(halted, read_only)) == ["VDI_READONLY", read_only]
    assert x.VBD.get_mode(x.VBD.create(vbd_record(halted, read_only, mode="RO"))) == "RO"
    spare = x.VDI.create(vdi_record(sr))
    assert failure(x.VBD.create, vbd_record(halted, spare, userdevice="disk-two")) == [
        "INVALID_DEVICE",
        "disk-two",
    ]
    # "0", "xvda" and "hda" name the same position as the existing disk 0.
    for taken in ("0", "xvda", "hda"):
        assert failure(x.VBD.create, vbd_record(halted, spare, userdevice=taken)) == [
            "DEVICE_ALREADY_EXISTS",
            taken,
        ]
    # autodetect takes the first free position (0 is the disk, 1 the VBD made above).
    assert x.VBD.get_userdevice(x.VBD.create(vbd_record(halted, spare))) == "2"
    empty_cd = x.VBD.create(vbd_record(halted, NULL, type="CD", mode="RO", empty=True))
    assert (x.VBD.get_VDI(empty_cd), x.VBD.get_empty(empty_cd)) == (NULL, True)


def test_device_and_attachment_are_kept_only_for_a_suspended_vm(small) -> None:
    """That is how a checkpoint's VBDs come attached (docs/xapi.md §8.9, §8.11)."""
    _sim, session, x = small
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    halted = vm_by_name(session, "vm-00002")
    running = vm_by_name(session, "vm-00001")
    checkpoint = x.VM.checkpoint(running, "cp")
    suspended = x.VM.clone(checkpoint, "suspended copy")
    assert x.VM.get_power_state(suspended) == "Suspended"
    plugged = {"device": "xvdf", "currently_attached": True, "userdevice": "5"}
    on_halted = x.VBD.create(vbd_record(halted, x.VDI.create(vdi_record(sr)), **plugged))
    assert (x.VBD.get_device(on_halted), x.VBD.get_currently_attached(on_halted)) == ("", False)
    on_suspended = x.VBD.create(vbd_record(suspended, x.VDI.create(vdi_record(sr)), **plugged))
    assert (x.VBD.get_device(on_suspended), x.VBD.get_currently_attached(on_suspended)) == (
        "xvdf",
        True,
    )


def vif_record(vm: str, network: str, **fields) -> dict:
    return {
        "device": "0",
        "network": network,
        "VM": vm,
        "MAC": "",
        "MTU": "1500",
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
        **fields,
    }


def test_vif_create_derives_an_empty_mac_from_the_vms_seed_and_checks_the_rest(small) -> None:
    """xapi_vif_helpers.ml create: INVALID_DEVICE, then an empty MAC derived from the VM's
    mac_seed (which VM.create adds), MAC_INVALID, DEVICE_ALREADY_EXISTS (docs/xapi.md §8.9)."""
    _sim, _session, x = small
    network = x.network.get_all()[0]
    vm = x.VM.create(vm_create_record(other_config={"restored-from": "backup"}))
    seed = x.VM.get_other_config(vm)["mac_seed"]
    assert len(seed) == 36 and x.VM.get_other_config(vm)["restored-from"] == "backup"
    twin = x.VM.create(vm_create_record(other_config={"mac_seed": seed}))
    assert x.VM.get_other_config(twin) == {"mac_seed": seed}, "a seed the record brings is kept"

    first = x.VIF.create(vif_record(vm, network))
    second = x.VIF.create(vif_record(vm, network, device="1"))
    mac = x.VIF.get_MAC(first)
    assert re.fullmatch(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}", mac), mac
    assert int(mac[:2], 16) & 0b11 == 0b10, "locally administered, unicast"
    assert x.VIF.get_MAC_autogenerated(first) is True
    assert x.VIF.get_MAC(second) != mac, "each device its own MAC"
    assert x.VIF.get_MAC(x.VIF.create(vif_record(twin, network))) == mac, "same seed and device"
    other = x.VM.create(vm_create_record())
    assert x.VIF.get_MAC(x.VIF.create(vif_record(other, network))) != mac, "another seed"

    given = x.VIF.create(vif_record(vm, network, device="2", MAC="AA:bb:cc:00:00:01"))
    assert (x.VIF.get_MAC(given), x.VIF.get_MAC_autogenerated(given)) == (
        "AA:bb:cc:00:00:01",
        False,
    )
    before = x.VM.get_VIFs(vm)
    assert failure(x.VIF.create, vif_record(vm, network, device="eth3")) == [
        "INVALID_DEVICE",
        "eth3",
    ]
    assert failure(x.VIF.create, vif_record(vm, network, device="3", MAC="aa:bb:cc:00:00:1")) == [
        "MAC_INVALID",
        "aa:bb:cc:00:00:1",
    ]
    assert failure(x.VIF.create, vif_record(vm, network, device="1")) == [
        "DEVICE_ALREADY_EXISTS",
        "1",
    ]
    assert x.VM.get_VIFs(vm) == before, "a refused VIF changes nothing"
    x.VM.remove_from_other_config(vm, "mac_seed")
    assert failure(x.VIF.create, vif_record(vm, network, device="3")) == ["MAC_INVALID", ""]
