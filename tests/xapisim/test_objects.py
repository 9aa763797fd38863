"""Classes, fields and generic methods of docs/xapi.md §8, on the seeded pool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, vm_by_name


def test_seed_pool_shape(xapisim_factory) -> None:
    sim = xapisim_factory(vms=12, hosts=2)
    assert sim.ready_line == (
        f'xapisim ready at http://127.0.0.1:{sim.port}/ (pool "xapisim-2h-12vm", 12 VMs, 2 hosts)'
    )
    x = sim.session().xenapi
    (pool,) = x.pool.get_all_records().values()
    assert pool["name_label"] == "xapisim-2h-12vm"
    hosts = x.host.get_all_records()
    assert pool["master"] in hosts and len(hosts) == 2
    vms = x.VM.get_all_records()
    guests = [r for r in vms.values() if not r["is_control_domain"] and not r["is_a_template"]]
    assert len(guests) == 12
    assert {r["power_state"] for r in guests} == {"Running", "Halted"}
    assert sum(r["is_control_domain"] for r in vms.values()) == 2
    assert any(len([v for v in r["VBDs"] if x.VBD.get_type(v) == "Disk"]) >= 2 for r in guests)
    vdis = x.VDI.get_all_records()
    assert any("[NOBAK]" in r["name_label"] for r in vdis.values())
    srs = x.SR.get_all_records()
    assert {r["content_type"] for r in srs.values()} == {"user", "iso"}
    assert sum(not r["shared"] for r in srs.values()) == 2  # a local SR per host
    for ref, record in vms.items():
        for vbd in record["VBDs"]:
            assert x.VBD.get_VM(vbd) == ref
    for name in ("network", "VIF", "PBD", "task"):
        assert isinstance(getattr(x, name).get_all_records(), dict)


def test_get_record_by_uuid_and_field_getters(xapisim) -> None:
    x = xapisim.session().xenapi
    vm = vm_by_name(xapisim.session(), "vm-00000")
    record = x.VM.get_record(vm)
    assert x.VM.get_by_uuid(record["uuid"]) == vm
    assert x.VM.get_name_label(vm) == "vm-00000"
    assert x.VM.get_power_state(vm) == record["power_state"]
    assert x.VM.get_memory_static_max(vm) == record["memory_static_max"]
    for field in (
        "uuid",
        "name_label",
        "power_state",
        "is_a_template",
        "is_a_snapshot",
        "is_control_domain",
        "snapshot_of",
        "snapshots",
        "snapshot_time",
        "snapshot_info",
        "VBDs",
        "VIFs",
        "suspend_VDI",
        "resident_on",
        "other_config",
        "tags",
        "blocked_operations",
        "allowed_operations",
        "current_operations",
        "VTPMs",
        "domid",
    ):
        assert field in record, field
    vdi = disk_vdis(xapisim.session(), vm)[0]
    vdi_record = x.VDI.get_record(vdi)
    # A file-based SR (nfs, ext) writes no vdi_type; a root VHD has no vhd-parent.
    assert vdi_record["sm_config"] == {}
    assert vdi_record["managed"] is True and vdi_record["read_only"] is False
    assert int(vdi_record["virtual_size"]) == 64 * 1024 * 1024
    assert vdi_record["is_a_snapshot"] is False and vdi_record["snapshot_of"] == "OpaqueRef:NULL"


def test_missing_objects(xapisim) -> None:
    x = xapisim.session().xenapi
    with pytest.raises(XenAPI.Failure) as by_uuid:
        x.VM.get_by_uuid("00000000-0000-0000-0000-000000000000")
    assert by_uuid.value.details == ["UUID_INVALID", "VM", "00000000-0000-0000-0000-000000000000"]
    with pytest.raises(XenAPI.Failure) as record:
        x.VDI.get_record("OpaqueRef:gone")
    assert record.value.details == ["HANDLE_INVALID", "VDI", "OpaqueRef:gone"]
    vm = x.VM.get_all()[0]
    with pytest.raises(XenAPI.Failure) as wrong_class:
        x.VDI.get_record(vm)
    assert wrong_class.value.details == ["HANDLE_INVALID", "VDI", vm]


def test_setters_and_map_and_set_fields(xapisim) -> None:
    x = xapisim.session().xenapi
    vm = vm_by_name(xapisim.session(), "vm-00001")
    x.VM.set_name_label(vm, "renamed")
    assert x.VM.get_name_label(vm) == "renamed"
    x.VM.set_memory_static_max(vm, "8589934592")
    assert x.VM.get_memory_static_max(vm) == "8589934592"
    x.VM.add_to_other_config(vm, "xoweb:backup:job", "j1")
    assert x.VM.get_other_config(vm)["xoweb:backup:job"] == "j1"
    with pytest.raises(XenAPI.Failure) as duplicate:
        x.VM.add_to_other_config(vm, "xoweb:backup:job", "j2")
    assert duplicate.value.details == [
        "MAP_DUPLICATE_KEY",
        "VM",
        "other_config",
        vm,
        "xoweb:backup:job",
    ]
    x.VM.remove_from_other_config(vm, "xoweb:backup:job")
    x.VM.remove_from_other_config(vm, "xoweb:backup:job")  # removing a missing key is fine
    assert "xoweb:backup:job" not in x.VM.get_other_config(vm)
    x.VM.add_tags(vm, "prod")
    x.VM.add_tags(vm, "prod")
    assert x.VM.get_tags(vm) == ["prod"]
    x.VM.remove_tags(vm, "prod")
    assert x.VM.get_tags(vm) == []
    with pytest.raises(XenAPI.Failure) as read_only:
        x.VM.set_power_state(vm, "Halted")
    assert read_only.value.details == ["MESSAGE_METHOD_UNKNOWN", "VM.set_power_state"]


def test_get_all_records_where(xapisim) -> None:
    x = xapisim.session().xenapi
    running = x.VM.get_all_records_where(
        'field "power_state" = "Running" and field "is_control_domain" = "false"'
    )
    assert running and all(
        r["power_state"] == "Running" and not r["is_control_domain"] for r in running.values()
    )
    snapshots = x.VM.get_all_records_where('field "is_a_snapshot" = "true"')
    assert snapshots == {}
    either = x.VM.get_all_records_where(
        'field "name_label" = "vm-00000" or field "name_label" = "vm-00002"'
    )
    assert sorted(r["name_label"] for r in either.values()) == ["vm-00000", "vm-00002"]
    assert len(x.VM.get_all_records_where("true")) == len(x.VM.get_all())


def test_records_carry_every_field_of_xapis_datamodel(xapisim) -> None:
    """The public fields of pool, host, SR and VM as `ocaml/idl/datamodel*.ml` lists them
    (datamodel_fields.json, read from xapi-project/xen-api), defaults where the pool has no
    value of its own."""
    expected = json.loads(Path(__file__).with_name("datamodel_fields.json").read_text())
    x = xapisim.session().xenapi
    for cls in ("pool", "host", "SR", "VM"):
        for record in getattr(x, cls).get_all_records().values():
            missing = [field for field in expected[cls] if field not in record]
            assert missing == [], (cls, missing)
    host = next(iter(x.host.get_all_records().values()))
    assert host["license_server"] == {"address": "localhost", "port": "27000"}
    assert host["virtual_hardware_platform_versions"] == ["0"]
    vm = x.VM.get_record(vm_by_name(xapisim.session(), "vm-00001"))
    assert (vm["actions_after_softreboot"], vm["groups"], vm["VGPUs"]) == ("soft_reboot", [], [])
    (pool,) = x.pool.get_all_records().values()
    assert (pool["coordinator_bias"], pool["repositories"]) == (True, [])
