"""The `sim.` control surface (xapisim/README.md "Control surface")."""

from __future__ import annotations

import base64
import xmlrpc.client

import pytest
import XenAPI

from tests.xapisim.helpers import (
    call_xml,
    disk_vdis,
    export,
    post_xml,
    request,
    sha256_hex,
    vm_by_name,
)

MIB = 1024 * 1024


def test_sim_methods_need_a_session(xapisim) -> None:
    _, _, body = post_xml(
        xapisim.url, call_xml("sim.vdi_sha256", "OpaqueRef:nobody", "OpaqueRef:x")
    )
    assert xmlrpc.client.loads(body.decode())[0][0]["ErrorDescription"] == [
        "SESSION_INVALID",
        "OpaqueRef:nobody",
    ]


def test_vm_create_and_destroy(xapisim) -> None:
    x = xapisim.session().xenapi
    vdis_before = set(x.VDI.get_all())
    vm = xapisim.sim("vm_create", "rehearsal", "2", "8M", "Running")
    record = x.VM.get_record(vm)
    assert (record["name_label"], record["power_state"]) == ("rehearsal", "Running")
    disks = [x.VBD.get_VDI(v) for v in record["VBDs"]]
    assert len(disks) == 2 and all(x.VDI.get_virtual_size(d) == str(8 * MIB) for d in disks)
    assert all(x.VBD.get_currently_attached(v) for v in record["VBDs"])
    assert len(record["VIFs"]) == 1
    assert xapisim.sim("vdi_sha256", disks[0]) == sha256_hex(bytes(8 * MIB))
    snap = x.VM.snapshot(vm, "kept")
    xapisim.sim("vm_destroy", vm)
    with pytest.raises(XenAPI.Failure) as gone:
        x.VM.get_record(vm)
    assert gone.value.details == ["HANDLE_INVALID", "VM", vm]
    snap_disks = {x.VBD.get_VDI(v) for v in x.VM.get_VBDs(snap) if x.VBD.get_type(v) == "Disk"}
    remaining = set(x.VDI.get_all()) - vdis_before
    # The snapshot made a hidden base copy under each disk; they stay until the SM coalesces.
    assert {v for v in remaining if x.VDI.get_managed(v)} == snap_disks
    assert {x.VDI.get_name_label(v) for v in remaining - snap_disks} == {"base copy"}
    assert xapisim.sim("coalesce") == "2"
    assert set(x.VDI.get_all()) - vdis_before == snap_disks


def test_vdi_create_write_and_destroy(xapisim) -> None:
    x = xapisim.session().xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vdi = xapisim.sim("vdi_create", sr, "scratch", "4M")
    assert x.VDI.get_virtual_size(vdi) == str(4 * MIB)
    assert xapisim.sim("vdi_blocks", vdi) == []
    payload = b"0123456789" * 100
    xapisim.sim("vdi_write", vdi, str(2 * MIB - 500), base64.b64encode(payload).decode())
    xapisim.sim("vdi_write", vdi, "0", xmlrpc.client.Binary(b"head"))  # <base64> works too
    expected = bytearray(4 * MIB)
    expected[2 * MIB - 500 : 2 * MIB + 500] = payload
    expected[0:4] = b"head"
    assert xapisim.sim("vdi_sha256", vdi) == sha256_hex(expected)
    assert xapisim.sim("vdi_blocks", vdi) == ["0", "1"]
    with pytest.raises(XenAPI.Failure) as outside:
        xapisim.sim("vdi_write", vdi, str(4 * MIB - 1), base64.b64encode(b"xx").decode())
    assert outside.value.details == [
        "VDI_IO_ERROR",
        "write of 2 bytes at 4194303 outside a 4194304-byte disk",
    ]
    xapisim.sim("vdi_destroy", vdi)
    assert vdi not in x.VDI.get_all()


def test_vdi_write_random_is_repeatable_and_partial(xapisim_factory) -> None:
    digests = []
    for name in ("a", "b"):
        sim = xapisim_factory(vms=1, name=name)
        session = sim.session()
        vdi = disk_vdis(session, vm_by_name(session, "vm-00000"))[0]
        blocks = sim.sim("vdi_write_random", vdi, "5", "same-seed")
        assert len(blocks) == 5 and blocks == sorted(blocks, key=int)
        digests.append((blocks, sim.sim("vdi_sha256", vdi)))
    assert digests[0] == digests[1]


def test_attached_vdi_destroyed_by_force(xapisim) -> None:
    session = xapisim.session()
    vdi = disk_vdis(session, vm_by_name(session, "vm-00001"))[0]
    xapisim.sim("vdi_destroy", vdi)
    assert vdi not in session.xenapi.VDI.get_all()


def test_fail_next_import_and_redirected_import(xapisim_factory) -> None:
    sim = xapisim_factory(vms=4, hosts=2)
    session = sim.session()
    vdi = disk_vdis(session, vm_by_name(session, "vm-00003"))[0]  # on host 1's local SR
    path = f"/import_raw_vdi?session_id={session.handle}&vdi={vdi}&format=raw"
    status, headers, _ = request(sim.url, "PUT", path, body=b"", headers={"Content-Length": "0"})
    assert status == 302 and headers["Location"] == f"http://127.0.0.1:{sim.port + 1}{path}"
    sim.sim("fail_next", "import_raw_vdi", ["VDI_IO_ERROR", "Device I/O errors"])
    data = b"z" * MIB
    status, headers, _ = request(
        sim.member_urls[0], "PUT", path, body=data, headers={"Content-Length": str(MIB)}
    )
    assert status == 200
    task = headers["task-id"]
    record = session.xenapi.task.get_record(task)
    assert record["error_info"] == ["VDI_IO_ERROR", "Device I/O errors"]
    status, headers, _ = request(
        sim.member_urls[0], "PUT", path, body=data, headers={"Content-Length": str(MIB)}
    )
    assert status == 200
    raw = export(sim.member_urls[0], session.handle, vdi, "raw")[2]
    assert raw[:MIB] == data


def test_host_down_and_up(xapisim_factory) -> None:
    sim = xapisim_factory(vms=1, hosts=2)
    x = sim.session().xenapi
    member = next(
        ref
        for ref, r in x.host.get_all_records().items()
        if r["address"].endswith(str(sim.port + 1))
    )
    sim.sim("host_down", member)
    with pytest.raises(ConnectionRefusedError):
        XenAPI.Session(sim.member_urls[0]).login_with_password("root", "xapisim")
    sim.sim("host_up", member)
    with pytest.raises(XenAPI.Failure) as slave:
        XenAPI.Session(sim.member_urls[0]).login_with_password("root", "xapisim")
    assert slave.value.details == ["HOST_IS_SLAVE", f"127.0.0.1:{sim.port}"]
