"""`VDI.copy(vdi[, sr, base_vdi, into_vdi])` (docs/xapi.md §8.8): a full copy into a new VDI, or
only the blocks that differ from a base into an existing one; XAPI's refusals."""

from __future__ import annotations

import pytest
import XenAPI

from tests.xapisim.helpers import task_value, wait_task

MIB = 1024 * 1024


def failure(call, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        call(*args)
    return raised.value.details


def new_vdi(x, sr: str, size: int, **fields) -> str:
    return x.VDI.create(
        {
            "SR": sr,
            "virtual_size": str(size),
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {},
            **fields,
        }
    )


def test_full_copy_and_delta_copy_into_a_vdi(xapisim_factory) -> None:
    sim = xapisim_factory(vms=1, disk_size="16M")
    session = sim.session()
    x = session.xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    disk = sim.sim("vdi_create", sr, "source", "6M")
    x.VDI.add_to_other_config(disk, "kept", "yes")
    sim.sim("vdi_write_random", disk, 2, "first")
    first = x.VDI.snapshot(disk)
    copy = x.VDI.copy(first, sr)  # a new VDI, like the source, writable, sm_config empty
    record = x.VDI.get_record(copy)
    assert (record["name_label"], record["other_config"], record["read_only"]) == (
        "source",
        {"kept": "yes"},
        False,
    )
    assert (record["is_a_snapshot"], record["sm_config"], record["SR"]) == (False, {}, sr)
    assert sim.sim("vdi_sha256", copy) == sim.sim("vdi_sha256", first)
    sim.sim("vdi_write_random", disk, 2, "second")
    second = x.VDI.snapshot(disk)
    task = x.Async.VDI.copy(second, "OpaqueRef:NULL", first, copy)  # only what changed
    record = wait_task(session, task)
    assert (record["status"], task_value(record)) == ("success", copy)
    assert sim.sim("vdi_sha256", copy) == sim.sim("vdi_sha256", second)
    assert x.VDI.get_VBDs(copy) == [] and x.VDI.get_VBDs(second) == []  # dom0 VBDs gone


def test_copy_refusals(xapisim_factory) -> None:
    sim = xapisim_factory(vms=1, disk_size="16M", args=("--coalesce-delay", "-1"))
    session = sim.session()
    x = session.xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    disk = sim.sim("vdi_create", sr, "source", "6M")
    sim.sim("vdi_write_random", disk, 1, "data")
    frozen = new_vdi(x, sr, 6 * MIB, read_only=True)
    assert failure(x.VDI.copy, disk, sr, "OpaqueRef:NULL", frozen) == ["VDI_READONLY", frozen]
    small = new_vdi(x, sr, 2 * MIB)
    assert failure(x.VDI.copy, disk, sr, "OpaqueRef:NULL", small) == [
        "VDI_TOO_SMALL",
        small,
        str(6 * MIB),
    ]
    snapshot = x.VDI.snapshot(disk)
    base = x.VDI.get_by_uuid(x.VDI.get_sm_config(snapshot)["vhd-parent"])
    assert failure(x.VDI.copy, base, sr) == ["VDI_NOT_MANAGED", base]
    count = len(x.VDI.get_all())
    assert failure(x.VDI.copy, disk) == ["HANDLE_INVALID", "SR", "OpaqueRef:NULL"]
    assert len(x.VDI.get_all()) == count  # nothing made
