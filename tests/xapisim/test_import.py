"""`PUT /import_raw_vdi` (docs/xapi.md §9.4): raw, VHD applied as a patch, and the refusals."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from tests import qemu_img
from tests.xapisim.helpers import export, request, sha256_hex, task_value, wait_task

MIB = 1024 * 1024
SIZE = 64 * MIB


def new_vdi(session, sr: str, size: int = SIZE) -> str:
    return session.xenapi.VDI.create(
        {
            "SR": sr,
            "virtual_size": str(size),
            "name_label": "restore",
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {},
        }
    )


def put(sim, session, vdi: str, body: bytes, fmt: str, headers: dict | None = None):
    path = f"/import_raw_vdi?session_id={session.handle}&vdi={vdi}&format={fmt}"
    return request(
        sim.url,
        "PUT",
        path,
        body=body,
        headers={"Content-Length": str(len(body)), **(headers or {})},
    )


def test_restore_full_then_delta_vhd_gives_the_snapshot_bytes(pool) -> None:
    """The documented restore: new VDI, import the full VHD, then each delta in order."""
    sim, session, _vm, vdi = pool
    x = session.xenapi
    first = x.VDI.snapshot(vdi)
    sim.sim("vdi_write_random", vdi, 6, "between")
    second = x.VDI.snapshot(vdi)
    full = export(sim.url, session.handle, first, "vhd")[2]
    delta = export(sim.url, session.handle, second, "vhd", base=first)[2]
    target = new_vdi(session, x.VDI.get_SR(vdi))
    status, headers, _ = put(sim, session, target, full, "vhd")
    assert status == 200
    record = wait_task(session, headers["task-id"])
    assert record["status"] == "success" and task_value(record) == target
    assert sim.sim("vdi_sha256", target) == sim.sim("vdi_sha256", first)
    status, headers, _ = put(sim, session, target, delta, "vhd")
    assert wait_task(session, headers["task-id"])["status"] == "success"
    assert sim.sim("vdi_sha256", target) == sim.sim("vdi_sha256", second)
    restored = export(sim.url, session.handle, target, "raw")[2]
    assert sha256_hex(restored) == sim.sim("vdi_sha256", second)


def test_qemu_made_vhd_with_partial_coverage_is_applied_sector_by_sector(pool, tmp_path) -> None:
    sim, session, _vm, vdi = pool
    x = session.xenapi
    raw = bytearray(8 * MIB)
    raw[0:512] = b"A" * 512
    raw[3 * MIB + 4096 : 3 * MIB + 8192] = b"B" * 4096
    (tmp_path / "disk.raw").write_bytes(bytes(raw))
    qemu_img.write_vhd(tmp_path / "disk.raw", tmp_path / "q.vhd")
    target = new_vdi(session, x.VDI.get_SR(vdi), 8 * MIB)
    body = (tmp_path / "q.vhd").read_bytes()
    _status, headers, _ = put(sim, session, target, body, "vhd")
    assert wait_task(session, headers["task-id"])["status"] == "success"
    assert sim.sim("vdi_sha256", target) == sha256_hex(bytes(raw))


def test_raw_import_over_existing_content(pool) -> None:
    sim, session, _vm, vdi = pool
    payload = bytes(range(256)) * (4 * MIB // 256)
    status, headers, _ = put(sim, session, vdi, payload, "raw")
    assert status == 200
    assert wait_task(session, headers["task-id"])["status"] == "success"
    content = export(sim.url, session.handle, vdi, "raw")[2]
    assert content[: len(payload)] == payload
    assert sha256_hex(content) == sim.sim("vdi_sha256", vdi)


def _raw_request(url: str, head: str, body: bytes = b"") -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_content_length_optional_http_chunking_refused(pool) -> None:
    """Without Content-Length a raw body is read until the connection closes; an HTTP
    `Transfer-Encoding` is refused with XAPI's text (docs/xapi.md §9.4)."""
    sim, session, _vm, vdi = pool
    task = session.xenapi.task.create("import", "")
    path = f"/import_raw_vdi?session_id={session.handle}&vdi={vdi}&format=raw&task_id={task}"
    answer = _raw_request(sim.url, f"PUT {path} HTTP/1.1\r\nHost: x\r\n\r\n", b"z" * 5000)
    assert answer.startswith(b"HTTP/1.1 200 OK")
    record = wait_task(session, task)
    assert (record["status"], task_value(record)) == ("success", vdi)
    before = export(sim.url, session.handle, vdi, "raw")[2]
    assert before[:5000] == b"z" * 5000
    assert sim.sim("vdi_sha256", vdi) == sha256_hex(before)
    task = session.xenapi.task.create("import", "")
    path = f"/import_raw_vdi?session_id={session.handle}&vdi={vdi}&format=raw&task_id={task}"
    answer = _raw_request(
        sim.url,
        f"PUT {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"4\r\nabcd\r\n0\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 404 ")
    assert wait_task(session, task)["error_info"] == [
        "INTERNAL_ERROR",
        "Cannot handle encoding: chunked",
    ]


def test_truncated_upload_fails_with_vdi_io_error(pool) -> None:
    """XO's unknown-length uploads announce 1 PiB and cut the connection."""
    sim, session, _vm, vdi = pool
    full = export(sim.url, session.handle, vdi, "vhd")[2]
    target = new_vdi(session, session.xenapi.VDI.get_SR(vdi))
    task = session.xenapi.task.create("import", "")
    path = f"/import_raw_vdi?session_id={session.handle}&vdi={target}&format=vhd&task_id={task}"
    answer = _raw_request(
        sim.url, f"PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1125899906842624\r\n\r\n", full
    )
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert f"task-id:{task}".encode() in answer
    record = wait_task(session, task)
    assert (record["status"], record["error_info"]) == (
        "failure",
        ["VDI_IO_ERROR", "Device I/O errors"],
    )
    # The blocks before the cut were applied: the content equals the source.
    assert sim.sim("vdi_sha256", target) == sim.sim("vdi_sha256", vdi)


def test_garbage_vhd_fails_the_task(pool) -> None:
    sim, session, _vm, vdi = pool
    status, headers, _ = put(sim, session, vdi, b"x" * 4096, "vhd")
    assert status == 200
    record = wait_task(session, headers["task-id"])
    assert record["error_info"] == ["VDI_IO_ERROR", "Device I/O errors"]


def test_raw_import_without_vdi_creates_one_on_the_sr(pool) -> None:
    sim, session, _vm, vdi = pool
    x = session.xenapi
    sr = x.VDI.get_SR(vdi)
    payload = b"new disk" * (MIB // 8)
    path = f"/import_raw_vdi?session_id={session.handle}&sr_uuid={x.SR.get_uuid(sr)}&format=raw"
    status, headers, _ = request(
        sim.url, "PUT", path, body=payload, headers={"Content-Length": str(MIB)}
    )
    assert status == 200
    record = wait_task(session, headers["task-id"])
    created = task_value(record)
    assert x.VDI.get_SR(created) == sr and x.VDI.get_virtual_size(created) == str(MIB)
    assert x.VDI.get_name_label(created) == "Imported VDI"
    assert sim.sim("vdi_sha256", created) == sha256_hex(payload)
    task = x.task.create("import", "")
    vhd_path = f"/import_raw_vdi?session_id={session.handle}&sr_id={sr}&format=vhd&task_id={task}"
    status, _, _ = request(sim.url, "PUT", vhd_path, body=b"x", headers={"Content-Length": "1"})
    assert status == 400
    assert wait_task(session, task)["error_info"] == [
        "INTERNAL_ERROR",
        "Importing a VHD directly into an SR not yet supported",
    ]
