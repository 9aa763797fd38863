"""`GET /export_raw_vdi` (docs/xapi.md §9.1-§9.3, docs/vhd.md §5.1), read back by libvhdi
and qemu-img.

Every comparison is against both the simulator's `format=raw` export and its `sim.vdi_sha256`.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid

from tests import qemu_img
from tests.xapisim import vhd_check
from tests.xapisim.helpers import (
    disk_vdis,
    export,
    request,
    sha256_hex,
    task_value,
    vm_by_name,
    wait_task,
)

MIB = 1024 * 1024
BLOCK = 2 * MIB
SIZE = 64 * MIB


def test_raw_export_headers_body_and_task(pool) -> None:
    sim, session, _vm, vdi = pool
    status, headers, body = export(sim.url, session.handle, vdi, "raw")
    assert status == 200
    assert headers["content-length"] is None and headers["transfer-encoding"] is None
    assert headers["connection"] == "close"
    assert headers["cache-control"] == "no-cache, no-store"
    assert headers["content-type"] == "application/octet-stream"
    uuid_ = session.xenapi.VDI.get_uuid(vdi)
    assert headers["content-disposition"] == f'attachment; filename="{uuid_}.raw"'
    assert len(body) == SIZE
    assert sha256_hex(body) == sim.sim("vdi_sha256", vdi)
    assert body.count(0) < SIZE  # real, partly written content
    task = headers["task-id"]
    record = wait_task(session, task)
    assert (record["status"], record["result"], record["progress"]) == ("success", "", 1.0)


def test_full_vhd_stream_layout_is_xapis(pool) -> None:
    sim, session, _vm, vdi = pool
    written = sim.sim("vdi_write_random", vdi, 3, "seed-1")
    status, headers, body = export(sim.url, session.handle, vdi, "vhd")
    assert status == 200 and headers["content-type"] == "application/vhd"
    assert headers["content-length"] is None
    layout = vhd_check.read_layout(body)
    assert layout.footer_at_start == layout.footer_at_end
    assert (layout.creator, layout.creator_version, layout.host_os) == (b"caml", 1, 0)
    assert (layout.timestamp, layout.features, layout.disk_type) == (0, 2, 3)
    assert layout.current_size == layout.original_size == SIZE
    assert (layout.table_offset, layout.max_entries, layout.block_size) == (2048, 32, BLOCK)
    assert layout.parent_uuid == bytes(16)
    assert body[1536:2048] == bytes(512)
    blocks = vhd_check.allocated_blocks(layout)
    assert blocks == [int(b) for b in sim.sim("vdi_blocks", vdi)]
    assert {int(b) for b in written} <= set(blocks)
    offsets = [layout.bat[b] * 512 for b in blocks]
    bat_end = 2048 + 512  # 32 entries * 4 bytes, rounded up to a sector
    assert offsets == [
        bat_end + i * (512 + BLOCK) for i in range(len(blocks))
    ]  # ascending, contiguous
    assert all(body[o : o + 512] == b"\xff" * 512 for o in offsets)  # full bitmaps
    assert len(body) == 2048 + 512 + len(blocks) * (512 + BLOCK) + 512
    second = export(sim.url, session.handle, vdi, "vhd")[2]
    assert vhd_check.read_layout(second).unique_id != layout.unique_id  # fresh UUID per export


def test_full_vhd_read_by_libvhdi_and_qemu(pool, tmp_path) -> None:
    sim, session, _vm, vdi = pool
    sim.sim("vdi_write_random", vdi, 4, "seed-2")
    raw = export(sim.url, session.handle, vdi, "raw")[2]
    vhd = tmp_path / "full.vhd"
    vhd.write_bytes(export(sim.url, session.handle, vdi, "vhd")[2])
    assert sha256_hex(raw) == sim.sim("vdi_sha256", vdi)
    assert vhd_check.pyvhdi_read(vhd) == raw
    # qemu-img trusts CHS for creator `caml` (docs/vhd.md §6): it reads a size rounded down to the
    # geometry, so compare what it reads with the same prefix of the raw export.
    qemu = qemu_img.read_vhd(vhd, tmp_path / "qemu.raw")
    assert len(qemu) == qemu_img.virtual_size(vhd)
    assert SIZE - 64 * 1024 < len(qemu) <= SIZE
    assert qemu == raw[: len(qemu)]


def test_snapshot_keeps_its_bytes_while_the_disk_changes(pool) -> None:
    sim, session, _vm, vdi = pool
    before = sim.sim("vdi_sha256", vdi)
    snapshot = session.xenapi.VDI.snapshot(vdi)
    sim.sim("vdi_write", vdi, str(5 * MIB + 512), base64.b64encode(b"changed" * 100).decode())
    assert sim.sim("vdi_sha256", snapshot) == before
    assert sim.sim("vdi_sha256", vdi) != before
    raw_snapshot = export(sim.url, session.handle, snapshot, "raw")[2]
    assert sha256_hex(raw_snapshot) == before
    raw_disk = export(sim.url, session.handle, vdi, "raw")[2]
    assert raw_disk[5 * MIB + 512 : 5 * MIB + 512 + 700] == b"changed" * 100


def test_delta_export_is_the_symmetric_difference(pool, tmp_path) -> None:
    """Full of snapshot 1, delta of snapshot 2 against it: libvhdi reads the chain back as
    snapshot 2's bytes, and the delta holds exactly the blocks written in between."""
    sim, session, _vm, vdi = pool
    x = session.xenapi
    sim.sim("vdi_write_random", vdi, 2, "before")
    first = x.VDI.snapshot(vdi)
    written = sorted({int(b) for b in sim.sim("vdi_write_random", vdi, 5, "between")})
    second = x.VDI.snapshot(vdi)
    sim.sim("vdi_write_random", vdi, 3, "after")  # must not leak into the delta

    full = tmp_path / "1-full.vhd"
    full.write_bytes(export(sim.url, session.handle, first, "vhd")[2])
    status, headers, delta_bytes = export(sim.url, session.handle, second, "vhd", base=first)
    assert status == 200 and headers["content-length"] is None
    delta = vhd_check.read_layout(delta_bytes)
    assert delta.disk_type == 4
    assert delta.creator == b"caml" and delta.timestamp == 0
    assert vhd_check.allocated_blocks(delta) == written
    assert delta.parent_uuid != bytes(16)
    sr_uuid = x.SR.get_uuid(x.VDI.get_SR(first))
    assert (
        delta.parent_name == f"/var/run/sr-mount/{sr_uuid}/{uuid.UUID(bytes=delta.parent_uuid)}.vhd"
    )
    assert delta.locator0[0] == 0x4D616358 and delta.locator0[4] == 1536  # MacX at 1536
    assert delta_bytes[1536:2048] == bytes(512)  # ... streamed as a zero sector
    offsets = [delta.bat[b] * 512 for b in written]
    assert all(delta_bytes[o : o + 512] == b"\xff" * 512 for o in offsets)

    # Exported files do not chain by themselves (docs/vhd.md §11.3): point the parent identity
    # right.
    vhd_check.set_footer_uuid(full, delta.parent_uuid)
    delta_path = tmp_path / "2-delta.vhd"
    delta_path.write_bytes(delta_bytes)
    chain = vhd_check.pyvhdi_read(delta_path, parent=full)
    raw_second = export(sim.url, session.handle, second, "raw")[2]
    assert chain == raw_second
    assert sha256_hex(chain) == sim.sim("vdi_sha256", second)
    assert sha256_hex(chain) != sim.sim("vdi_sha256", vdi)


def test_delta_against_the_live_disk_and_by_uuid(pool, tmp_path) -> None:
    """Live VDI vs its snapshot: blocks written on the VDI since; refs or UUIDs both work."""
    sim, session, _vm, vdi = pool
    x = session.xenapi
    base = x.VDI.snapshot(vdi)
    written = sorted({int(b) for b in sim.sim("vdi_write_random", vdi, 4, "live")})
    status, _, delta_bytes = export(
        sim.url, session.handle, x.VDI.get_uuid(vdi), "vhd", base=x.VDI.get_uuid(base)
    )
    assert status == 200
    layout = vhd_check.read_layout(delta_bytes)
    assert vhd_check.allocated_blocks(layout) == written
    full = tmp_path / "base.vhd"
    full.write_bytes(export(sim.url, session.handle, base, "vhd")[2])
    vhd_check.set_footer_uuid(full, layout.parent_uuid)
    delta = tmp_path / "delta.vhd"
    delta.write_bytes(delta_bytes)
    assert sha256_hex(vhd_check.pyvhdi_read(delta, parent=full)) == sim.sim("vdi_sha256", vdi)
    # raw with base: the changed blocks' content, zeros elsewhere.
    raw_delta = export(sim.url, session.handle, vdi, "raw", base=base)[2]
    raw_full = export(sim.url, session.handle, vdi, "raw")[2]
    for index in range(SIZE // BLOCK):
        piece = raw_delta[index * BLOCK : (index + 1) * BLOCK]
        assert piece == (
            raw_full[index * BLOCK : (index + 1) * BLOCK] if index in written else bytes(BLOCK)
        )


def test_without_session_is_401_and_leaves_the_given_task_pending(pool) -> None:
    """XAPI checks credentials before it uses the task: the task never moves
    (docs/xapi.md §9.1)."""
    sim, session, _vm, vdi = pool
    task = session.xenapi.task.create("export", "")
    status, headers, body = request(
        sim.url, "GET", f"/export_raw_vdi?vdi={vdi}&format=raw&task_id={task}"
    )
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="xapi"'
    assert b"HTTP 401 unauthorised" in body
    time.sleep(0.2)
    record = session.xenapi.task.get_record(task)
    assert (record["status"], record["error_info"], record["progress"]) == ("pending", [], 0.0)
    status, _, _ = request(sim.url, "GET", f"/export_raw_vdi?session_id=OpaqueRef:bad&vdi={vdi}")
    assert status == 401


def test_basic_auth_and_cookie(pool) -> None:
    sim, session, _vm, vdi = pool
    token = base64.b64encode(b"root:xapisim").decode()
    status, _, body = request(
        sim.url, "GET", f"/export_raw_vdi?vdi={vdi}", headers={"Authorization": f"Basic {token}"}
    )
    assert status == 200 and sha256_hex(body) == sim.sim("vdi_sha256", vdi)
    status, _, body = request(
        sim.url,
        "GET",
        f"/export_raw_vdi/?vdi={vdi}&format=raw",
        headers={"Cookie": f"session_id={session.handle}"},
    )
    assert status == 200 and len(body) == SIZE


def test_task_id_parameter_runs_the_export_as_that_task(pool) -> None:
    sim, session, _vm, vdi = pool
    task = session.xenapi.task.create("export disk", "")
    status, headers, _ = export(sim.url, session.handle, vdi, "vhd", extra=f"&task_id={task}")
    assert status == 200 and headers["task-id"] == task
    record = wait_task(session, task)
    assert (record["status"], record["result"], record["progress"]) == ("success", "", 1.0)


def test_unknown_format_is_404_and_task_failure(pool) -> None:
    sim, session, _vm, vdi = pool
    task = session.xenapi.task.create("export", "")
    status, _, _ = export(sim.url, session.handle, vdi, "qcow3", extra=f"&task_id={task}")
    assert status == 404
    assert wait_task(session, task)["error_info"] == ["INTERNAL_ERROR", "Unknown format qcow3"]


def test_cut_export_fails_the_task_after_the_headers(pool) -> None:
    sim, session, _vm, vdi = pool
    sim.sim("cut_export_after", str(3 * MIB + 17))
    status, headers, body = export(sim.url, session.handle, vdi, "vhd")
    assert status == 200
    assert len(body) == 3 * MIB + 17  # a cut connection: no error page after it
    record = wait_task(session, headers["task-id"])
    assert record["status"] == "failure"
    assert record["error_info"] == ["VDI_IO_ERROR", "Device I/O errors"]
    # One-shot: the next export is whole.
    assert len(export(sim.url, session.handle, vdi, "raw")[2]) == SIZE


def test_fail_next_export_fails_only_the_task(pool) -> None:
    sim, session, _vm, vdi = pool
    sim.sim("fail_next", "export_raw_vdi", ["VDI_IO_ERROR", "Device I/O errors"])
    status, headers, body = export(sim.url, session.handle, vdi, "raw")
    # An error after the 200: XAPI's 500 page lands inside the body (xen-api#4603).
    assert status == 200 and body.startswith(b"HTTP/1.1 500 Internal Error\r\n")
    assert b"Server_error(VDI_IO_ERROR, Device I/O errors)" in body
    assert wait_task(session, headers["task-id"])["error_info"] == [
        "VDI_IO_ERROR",
        "Device I/O errors",
    ]


def test_rate_limit_and_a_cancel_that_does_not_stop_the_export(pool) -> None:
    """`task.cancel` only records the request; the export path never looks: the body comes
    whole and the task succeeds (docs/xapi.md §8.7)."""
    sim, session, _vm, vdi = pool
    sim.sim("set_rate_limit", str(40 * MIB))
    started = time.monotonic()
    assert len(export(sim.url, session.handle, vdi, "raw")[2]) == SIZE
    assert time.monotonic() - started >= 1.4  # 64 MiB at 40 MiB/s
    small = sim.sim("vdi_create", session.xenapi.VDI.get_SR(vdi), "small", "6M")
    sim.sim("vdi_write_random", small, 3, "cancel")
    sim.sim("set_rate_limit", str(4 * MIB))
    task = session.xenapi.task.create("slow export", "")
    canceller = threading.Timer(0.5, lambda: sim.session().xenapi.task.cancel(task))
    canceller.start()
    status, _, body = export(sim.url, session.handle, small, "raw", extra=f"&task_id={task}")
    canceller.join()
    assert status == 200 and sha256_hex(body) == sim.sim("vdi_sha256", small)
    record = wait_task(session, task)
    assert (record["status"], record["error_info"]) == ("success", [])
    assert list(record["current_operations"].values()) == ["cancel"]


def test_redirect_to_the_host_that_sees_a_local_sr(xapisim_factory) -> None:
    sim = xapisim_factory(vms=4, hosts=2)
    session = sim.session()
    vm = vm_by_name(session, "vm-00003")  # disks on host 1's local SR
    vdi = disk_vdis(session, vm)[0]
    sr = session.xenapi.VDI.get_SR(vdi)
    assert session.xenapi.SR.get_shared(sr) is False
    path = f"/export_raw_vdi?session_id={session.handle}&vdi={vdi}&format=raw"
    status, headers, _ = request(sim.url, "GET", path)
    assert status == 302
    assert headers["Location"] == f"http://127.0.0.1:{sim.port + 1}{path}"
    status, _, body = request(sim.member_urls[0], "GET", path)
    assert status == 200 and sha256_hex(body) == sim.sim("vdi_sha256", vdi)


def test_import_task_result_is_the_vdi_ref(pool) -> None:
    sim, session, _vm, vdi = pool
    x = session.xenapi
    target = x.VDI.create(
        {
            "SR": x.VDI.get_SR(vdi),
            "virtual_size": str(SIZE),
            "name_label": "t",
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {},
        }
    )
    raw = export(sim.url, session.handle, vdi, "raw")[2]
    status, headers, _ = request(
        sim.url,
        "PUT",
        f"/import_raw_vdi?session_id={session.handle}&vdi={target}&format=raw",
        body=raw,
        headers={"Content-Length": str(len(raw))},
    )
    assert status == 200
    record = wait_task(session, headers["task-id"])
    assert record["status"] == "success"
    assert task_value(record) == target
    assert sim.sim("vdi_sha256", target) == sha256_hex(raw)


def test_vhd_export_above_2040_gib_fails_the_task_after_the_headers(pool) -> None:
    sim, session, _vm, _vdi = pool
    x = session.xenapi
    huge = sim.sim("vdi_create", x.pool.get_default_SR(x.pool.get_all()[0]), "huge", "2041G")
    status, headers, body = export(sim.url, session.handle, huge, "vhd")
    assert status == 200 and body.startswith(b"HTTP/1.1 500 Internal Error\r\n")
    record = wait_task(session, headers["task-id"])
    assert record["error_info"] == ["VDI_TOO_LARGE", huge, str(2040 * 1024**3)]
