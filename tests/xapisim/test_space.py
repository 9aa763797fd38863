"""SR space (docs/xapi.md §12.4): `physical_utilisation` and `virtual_allocation` move as disks
are created, written, snapshotted, destroyed and coalesced; what does not fit is SR_FULL
[requested, maximum] and changes nothing."""

from __future__ import annotations

import pytest
import XenAPI

from tests.xapisim.helpers import disk_vdis, export, request, vm_by_name, wait_task

MIB = 1024 * 1024
BLOCK_COST = 2 * MIB + 512  # a block and its bitmap sector in a VHD file


def space(x, sr: str) -> tuple[int, int, int]:
    record = x.SR.get_record(sr)
    return (
        int(record["physical_size"]),
        int(record["physical_utilisation"]),
        int(record["virtual_allocation"]),
    )


@pytest.fixture
def pool(xapisim_factory):
    sim = xapisim_factory(
        vms=3, disk_size="16M", args=("--sr-size", "1G", "--coalesce-delay", "-1")
    )
    session = sim.session()
    x = session.xenapi
    return sim, session, x, x.pool.get_default_SR(x.pool.get_all()[0])


def test_utilisation_and_allocation_move_with_use(pool) -> None:
    sim, _session, x, sr = pool
    size, used, allocated = space(x, sr)
    assert size == 1024 * MIB  # --sr-size
    assert 0 < used < allocated  # thin: the seeded disks are mostly unwritten
    vdi = sim.sim("vdi_create", sr, "new", "8M")
    size, after_create, after_allocation = space(x, sr)
    assert after_allocation == allocated + 8 * MIB
    assert 0 < after_create - used < 8192  # a new VHD is only its metadata
    sim.sim("vdi_write_random", vdi, 2, "space")
    assert space(x, sr)[1] == after_create + 2 * BLOCK_COST
    assert int(x.VDI.get_physical_utilisation(vdi)) > 2 * BLOCK_COST
    snapshot = x.VDI.snapshot(vdi)
    _, after_snapshot, allocation_with_snapshot = space(x, sr)
    assert allocation_with_snapshot == after_allocation + 8 * MIB  # a visible VDI more
    assert 0 < after_snapshot - after_create - 2 * BLOCK_COST < 16384  # two empty leaves
    x.VDI.destroy(snapshot)
    _, after_destroy, allocation = space(x, sr)
    assert allocation == after_allocation
    assert after_destroy < after_snapshot  # the leaf went; the base copy keeps the data
    assert after_destroy > after_create + 2 * BLOCK_COST
    assert sim.sim("coalesce") == "1"
    assert space(x, sr)[1] == after_create + 2 * BLOCK_COST


def test_what_does_not_fit_is_sr_full_and_changes_nothing(pool) -> None:
    sim, session, x, sr = pool
    vdi = sim.sim("vdi_create", sr, "filling", "16M")
    sim.sim("sr_fill", sr, "3M")  # room for one block, not two
    size, used, _ = space(x, sr)
    assert size == used + 3 * MIB
    sim.sim("vdi_write_random", vdi, 1, "fits")
    with pytest.raises(XenAPI.Failure) as write:
        sim.sim("vdi_write_random", vdi, 3, "does not")
    assert write.value.details[0] == "SR_FULL"
    requested, maximum = (int(n) for n in write.value.details[1:])
    assert maximum == size and requested > size
    # A VM snapshot that does not fit leaves no half-made snapshot behind.
    sim.sim("sr_fill", sr)
    vm = vm_by_name(session, "vm-00000")  # three disks on this SR
    vdis_before = set(x.VDI.get_all())
    with pytest.raises(XenAPI.Failure) as snapshot:
        x.VM.snapshot(vm, "no room")
    assert snapshot.value.details[0] == "SR_FULL"
    assert x.VM.get_snapshots(vm) == [] and set(x.VDI.get_all()) == vdis_before
    # An import that runs out of room fails its task SR_FULL after the 200.
    target = disk_vdis(session, vm_by_name(session, "vm-00002"))[0]
    task = x.task.create("import", "")
    try:
        status, _, _ = request(
            sim.url,
            "PUT",
            f"/import_raw_vdi?session_id={session.handle}&vdi={target}&format=raw&task_id={task}",
            body=b"\xab" * (8 * MIB),
            headers={"Content-Length": str(8 * MIB)},
        )
        assert status == 200
    except (BrokenPipeError, ConnectionResetError):
        pass  # XAPI stops reading at the failure; the client may still be sending
    record = wait_task(session, task)
    assert (record["status"], record["error_info"][0]) == ("failure", "SR_FULL")
    sim.sim("sr_set_size", sr, "1G")
    assert x.VM.get_snapshot_of(x.VM.snapshot(vm, "room again")) == vm


def test_vdi_resize_grows_a_disk_and_never_shrinks_one(pool) -> None:
    sim, session, x, sr = pool
    vdi = sim.sim("vdi_create", sr, "growing", "4M")
    sim.sim("vdi_write_random", vdi, 2, "before")
    snapshot = x.VDI.snapshot(vdi)
    allocation = space(x, sr)[2]
    x.VDI.resize(vdi, str(5 * MIB))  # rounded up to whole 2 MiB blocks, as vhd-util does
    assert x.VDI.get_virtual_size(vdi) == str(6 * MIB)
    assert space(x, sr)[2] == allocation + 2 * MIB
    raw = export(sim.url, session.handle, vdi, "raw")[2]
    before = export(sim.url, session.handle, snapshot, "raw")[2]
    assert raw[: 4 * MIB] == before and raw[4 * MIB :] == bytes(2 * MIB)
    with pytest.raises(XenAPI.Failure) as shrink:
        x.VDI.resize(vdi, str(2 * MIB))
    assert shrink.value.details == [
        "SR_BACKEND_FAILURE_79",
        "",
        "VDI Invalid size [opterr=shrinking not allowed]",
        "",
    ]
