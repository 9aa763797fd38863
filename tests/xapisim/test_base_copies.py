"""Snapshots as a VHD storage manager makes them (docs/xapi.md §12): writable snapshot VDIs with
their own `sm_config`, hidden base copies chained by `vhd-parent`, in `SR.VDIs` and in events,
left behind by a destroy and coalesced later, by `sim.coalesce` or by the GC's delay."""

from __future__ import annotations

import time

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, export, sha256_hex, vm_by_name


def event_from(session, classes, token, timeout=5.0):
    return getattr(session.xenapi.event, "from")(classes, token, timeout)


def failure(call, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        call(*args)
    return raised.value.details


@pytest.fixture
def disk(xapisim_factory):
    """(simulator, session, halted VM, its 16 MiB disk with seeded content); the GC only
    runs when a test asks (`sim.coalesce`)."""
    sim = xapisim_factory(vms=3, disk_size="16M", args=("--coalesce-delay", "-1"))
    session = sim.session()
    vm = vm_by_name(session, "vm-00002")
    return sim, session, vm, disk_vdis(session, vm)[0]


def test_snapshot_vdi_and_its_base_copy(disk) -> None:
    sim, session, _vm, vdi = disk
    x = session.xenapi
    sr = x.VDI.get_SR(vdi)
    x.VDI.set_allow_caching(vdi, True)
    x.VDI.add_to_other_config(vdi, "xo:copy", "yes")
    token = event_from(session, ["vdi"], "", 0.1)["token"]
    snapshot = x.VDI.snapshot(vdi)
    record = x.VDI.get_record(snapshot)
    # Writable, its own sm_config, the source's metadata copied, its own snapshot_time.
    assert (record["is_a_snapshot"], record["snapshot_of"], record["read_only"]) == (
        True,
        vdi,
        False,
    )
    assert (record["allow_caching"], record["other_config"]) == (True, {"xo:copy": "yes"})
    assert record["snapshot_time"].value != "19700101T00:00:00Z"
    base_uuid = record["sm_config"]["vhd-parent"]
    assert list(record["sm_config"]) == ["vhd-parent"]
    assert x.VDI.get_sm_config(vdi) == {"vhd-parent": base_uuid}
    base = x.VDI.get_by_uuid(base_uuid)
    base_record = x.VDI.get_record(base)
    assert (base_record["name_label"], base_record["managed"], base_record["read_only"]) == (
        "base copy",
        False,
        True,
    )
    assert base_record["sm_config"] == {}  # the root of the chain
    assert (base_record["is_a_snapshot"], base_record["VBDs"]) == (False, [])
    assert int(base_record["physical_utilisation"]) > 2 * 1024 * 1024  # it holds the data
    assert base in x.SR.get_VDIs(sr)
    added = {
        e["ref"] for e in event_from(session, ["vdi"], token)["events"] if e["operation"] == "add"
    }
    assert added == {snapshot, base}
    # A base copy is not a disk: no destroy, no snapshot.
    assert failure(x.VDI.destroy, base) == ["VDI_NOT_MANAGED", base]
    assert failure(x.VDI.snapshot, base) == ["VDI_NOT_MANAGED", base]
    # Its bytes are the disk's at snapshot time.
    assert sim.sim("vdi_sha256", base) == sim.sim("vdi_sha256", snapshot)


def test_chains_grow_by_one_base_copy_per_snapshot_of_a_changed_disk(disk) -> None:
    sim, session, _vm, vdi = disk
    x = session.xenapi
    first = x.VDI.snapshot(vdi)
    base1 = x.VDI.get_sm_config(first)["vhd-parent"]
    again = x.VDI.snapshot(vdi)  # nothing written since: no new base copy (vhd-util)
    assert x.VDI.get_sm_config(again)["vhd-parent"] == base1
    sim.sim("vdi_write_random", vdi, 2, "between")
    second = x.VDI.snapshot(vdi)
    base2 = x.VDI.get_sm_config(second)["vhd-parent"]
    assert base2 != base1
    assert x.VDI.get_sm_config(x.VDI.get_by_uuid(base2)) == {"vhd-parent": base1}
    assert sim.sim("vdi_chain", vdi) == [x.VDI.get_uuid(vdi), base2, base1]
    hidden = x.VDI.get_all_records_where('field "managed" = "false"')
    assert {r["uuid"] for r in hidden.values()} == {base1, base2}


def test_destroy_leaves_base_copies_until_the_sm_coalesces(disk) -> None:
    sim, session, vm, vdi = disk
    x = session.xenapi
    before = sim.sim("vdi_sha256", vdi)
    snapshot = x.VM.snapshot(vm, "nightly")
    snap_disk = disk_vdis(session, snapshot)[0]
    base_uuid = x.VDI.get_sm_config(vdi)["vhd-parent"]
    base = x.VDI.get_by_uuid(base_uuid)
    sim.sim("vdi_write_random", vdi, 1, "after")
    after = sim.sim("vdi_sha256", vdi)
    x.VDI.destroy(snap_disk)
    x.VM.destroy(snapshot)
    assert x.VDI.get_managed(base) is False  # still there: nothing has coalesced yet
    token = event_from(session, ["vdi"], "", 0.1)["token"]
    assert sim.sim("coalesce") == "1"
    changes = {(e["operation"], e["ref"]) for e in event_from(session, ["vdi"], token)["events"]}
    assert ("del", base) in changes and ("mod", vdi) in changes
    assert failure(x.VDI.get_by_uuid, base_uuid) == ["UUID_INVALID", "VDI", base_uuid]
    assert base not in x.SR.get_VDIs(x.VDI.get_SR(vdi))
    assert x.VDI.get_sm_config(vdi) == {}  # the chain is one node again
    assert sim.sim("vdi_sha256", vdi) == after != before
    raw = export(sim.url, session.handle, vdi, "raw")[2]
    assert sha256_hex(raw) == after
    assert sim.sim("coalesce") == "0"


def test_the_gc_runs_by_itself_after_its_delay(disk) -> None:
    sim, session, _vm, vdi = disk
    x = session.xenapi
    sim.sim("set_coalesce_delay", "0.3")
    snapshot = x.VDI.snapshot(vdi)
    base = x.VDI.get_by_uuid(x.VDI.get_sm_config(vdi)["vhd-parent"])
    x.VDI.destroy(snapshot)
    assert x.VDI.get_managed(base) is False
    deadline = time.monotonic() + 10
    while base in x.VDI.get_all() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert base not in x.VDI.get_all()
    assert x.VDI.get_sm_config(vdi) == {}


def test_one_coalesce_folds_a_whole_chain(disk) -> None:
    """Three snapshots with writes between, all destroyed: one GC run merges every base copy
    down into the disk, whose bytes stay the same."""
    sim, session, _vm, vdi = disk
    x = session.xenapi
    snapshots = []
    for round_number in range(3):
        sim.sim("vdi_write_random", vdi, 1, f"round {round_number}")
        snapshots.append(x.VDI.snapshot(vdi))
    sim.sim("vdi_write_random", vdi, 1, "last")
    assert len(sim.sim("vdi_chain", vdi)) == 4
    content = sim.sim("vdi_sha256", vdi)
    for snapshot in snapshots:
        x.VDI.destroy(snapshot)
    assert sim.sim("coalesce") == "3"
    assert sim.sim("vdi_chain", vdi) == [x.VDI.get_uuid(vdi)]
    assert x.VDI.get_all_records_where('field "managed" = "false"') == {}
    assert x.VDI.get_sm_config(vdi) == {}
    assert sim.sim("vdi_sha256", vdi) == content
