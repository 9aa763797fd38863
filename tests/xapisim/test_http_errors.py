"""The shapes of the HTTP handlers' refusals (docs/xapi.md §9.1, §9.4): which ones come before
any header of the handler and leave the caller's task pending, which ones come after the 200
and fail it, and `/import_raw_vdi`'s checks and texts in XAPI's order."""

from __future__ import annotations

import socket
import struct
import time
from urllib.parse import urlsplit

import pytest

from tests.xapisim.helpers import export, request, sha256_hex, task_value, wait_task

MIB = 1024 * 1024


@pytest.fixture
def disk(xapisim_factory):
    sim = xapisim_factory(vms=3, disk_size="16M")
    session = sim.session()
    x = session.xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    vdi = sim.sim("vdi_create", sr, "target", "4M")
    return sim, session, sr, vdi


def still_pending(session, task: str) -> bool:
    time.sleep(0.2)
    record = session.xenapi.task.get_record(task)
    return (record["status"], record["error_info"]) == ("pending", [])


def test_a_bad_or_missing_vdi_is_a_500_before_any_header_and_the_task_stays(disk) -> None:
    sim, session, _sr, _vdi = disk
    x = session.xenapi
    task = x.task.create("export", "")
    for query in ("vdi=OpaqueRef:gone", "vdi=not-a-uuid", ""):
        path = f"/export_raw_vdi?session_id={session.handle}&{query}&task_id={task}"
        status, headers, body = request(sim.url, "GET", path)
        assert status == 500 and headers["task-id"] is None
        assert b"HTTP 500 internal server error" in body
    assert (
        b"UUID_INVALID, VDI, not-a-uuid"
        in request(sim.url, "GET", f"/export_raw_vdi?session_id={session.handle}&vdi=not-a-uuid")[2]
    )
    status, _, _ = request(
        sim.url,
        "PUT",
        f"/import_raw_vdi?session_id={session.handle}&vdi=OpaqueRef:gone&task_id={task}",
        body=b"x",
        headers={"Content-Length": "1"},
    )
    assert status == 500
    assert still_pending(session, task)


def test_a_bad_base_is_found_after_the_200_and_fails_the_task_uuid_invalid(disk) -> None:
    sim, session, _sr, vdi = disk
    task = session.xenapi.task.create("export", "")
    status, headers, body = export(
        sim.url, session.handle, vdi, "vhd", base="no-such-base", extra=f"&task_id={task}"
    )
    assert (status, headers["task-id"]) == (200, task)
    assert body.startswith(b"HTTP/1.1 500 Internal Error\r\n")  # xen-api#4603
    record = wait_task(session, task)
    assert (record["status"], record["error_info"]) == (
        "failure",
        ["UUID_INVALID", "VDI", "no-such-base"],
    )
    assert session.xenapi.VDI.get_VBDs(vdi) == []  # the disk's dom0 VBD went with the error


def test_import_checks_in_xapis_order(disk) -> None:
    sim, session, sr, vdi = disk
    x = session.xenapi

    def put(query: str, body: bytes = b"x", headers: dict | None = None) -> tuple[int, list]:
        task = x.task.create("import", "")
        status, _, _ = request(
            sim.url,
            "PUT",
            f"/import_raw_vdi?session_id={session.handle}&task_id={task}&{query}",
            body=body,
            headers={"Content-Length": str(len(body)), **(headers or {})},
        )
        return status, wait_task(session, task)["error_info"]

    assert put("format=raw") == (400, ["VDI_MISSING"])
    assert put(f"vdi={vdi}&format=qcow3") == (404, ["INTERNAL_ERROR", "Unknown format qcow3"])
    assert put(f"vdi={vdi}&format=vhd&chunked=true") == (
        404,
        ["INTERNAL_ERROR", "Cannot handle chunked VHD"],
    )
    assert put(f"sr_id={sr}&format=vhd") == (
        400,
        ["INTERNAL_ERROR", "Importing a VHD directly into an SR not yet supported"],
    )
    task = x.task.create("import", "")
    path = f"/import_raw_vdi?session_id={session.handle}&task_id={task}&sr_id={sr}&format=raw"
    parts = urlsplit(sim.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(f"PUT {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())  # no Content-Length
        assert conn.recv(100).startswith(b"HTTP/1.1 400 ")
    assert wait_task(session, task)["error_info"] == [
        "INTERNAL_ERROR",
        "Not enough info supplied to import",
    ]


def test_xapis_own_chunked_framing_for_raw(disk) -> None:
    """`chunked` in the query: each chunk a little-endian offset and length, then the bytes;
    offset 0 and length 0 end it (vhd-tool chunked.ml)."""
    sim, session, _sr, vdi = disk
    expected = bytearray(4 * MIB)
    body = b""
    for offset, data in ((0, b"first"), (3 * MIB - 7, b"across a block edge")):
        expected[offset : offset + len(data)] = data
        body += struct.pack("<QI", offset, len(data)) + data
    body += struct.pack("<QI", 0, 0)
    status, headers, _ = request(
        sim.url,
        "PUT",
        f"/import_raw_vdi?session_id={session.handle}&vdi={vdi}&format=raw&chunked=true",
        body=body,
        headers={"Content-Length": str(len(body))},
    )
    assert status == 200
    record = wait_task(session, headers["task-id"])
    assert (record["status"], task_value(record)) == ("success", vdi)
    assert sim.sim("vdi_sha256", vdi) == sha256_hex(bytes(expected))
