"""`PUT /import_raw_vdi` (docs/xapi.md §9.4, §9.7), in XAPI's order (import_raw_vdi.ml).

Steps: credentials (else 401, task left pending) → `vdi` naming nothing: HTTP 500, task left
pending → the SR (the VDI's, or `sr_id` / `sr_uuid`; neither: 400 and the task fails
VDI_MISSING) → 302 to the host that sees a local SR → format (unknown: 404) → `chunked` with a
format other than raw (404) → a `Transfer-Encoding` header (404) → without `vdi`, a raw upload
with a Content-Length creates "Imported VDI" (else 400) → the 200 head → then the dom0 VBD (RW:
a read-only VDI fails VDI_READONLY) and the body: raw written in place (zeros over unwritten
blocks skipped, the disk being pre-zeroed), XAPI's `chunked` framing, or a VHD applied as a
patch. Content-Length is optional. A short body fails the task VDI_IO_ERROR after applying what
arrived; space that runs out fails it SR_FULL. The task's result is the VDI.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import sm, tasks, vhdstream
from .disks import BLOCK_SIZE, ZERO_BLOCK
from .errors import VDI_IO_ERROR, XapiError
from .http_handlers import (
    MissingParameter,
    attached,
    in_transfer,
    logout_basic,
    redirect_if_elsewhere,
    send_internal_error,
    send_status,
    send_unauthorised,
    session_of,
    vdi_of_query,
    write_error_in_body,
    write_head,
)
from .transfer import Throttle

if TYPE_CHECKING:
    from .server import Handler

FORMATS = ("raw", "vhd")
CHUNK_HEADER = struct.Struct("<QI")
SLICE = 256 * 1024  # vhd-tool's chunked framing: offset, length (LE)


class Refused(Exception):
    """A refusal before the 200: the HTTP status to send and the task's error."""

    def __init__(self, status: str, *details: object) -> None:
        super().__init__(status)
        self.status = status
        self.error = XapiError(*details)


def import_raw_vdi(handler: Handler) -> None:
    sim = handler.sim
    db = sim.db
    query = handler.query()
    session, basic = session_of(handler, query)
    if session is None:
        send_unauthorised(handler)
        return
    try:
        try:
            vdi = vdi_of_query(db, query) if "vdi" in query else None
        except (XapiError, MissingParameter) as error:
            send_internal_error(handler, error)
            return
        given = query.get("task_id")
        if given and given not in db.tables["task"]:
            send_internal_error(handler, XapiError("HANDLE_INVALID", "task", given))
            return
        try:
            sr = _sr_of(db, vdi, query)
        except Refused as refused:
            tasks.fail(db, given, refused.error)
            send_status(handler, refused.status)
            return
        if redirect_if_elsewhere(handler, sr):
            return
        task = given or tasks.create(db, "Importing raw VDI", "", handler.host_ref, session)
        length_header = handler.headers.get("Content-Length")
        length = int(length_header) if length_header is not None else None
        try:
            fmt = _checked_format(handler, query)
            if vdi is None:
                vdi = _new_target(sim, fmt, length, sr)
        except Refused as refused:
            tasks.fail(db, task, refused.error)
            send_status(handler, refused.status)
            return
        except XapiError as error:
            tasks.fail(db, task, error)
            send_internal_error(handler, error)
            return
        write_head(
            handler,
            "200 OK",
            [
                ("Connection", "close"),
                ("task-id", task),
                ("content-type", "application/octet-stream"),
            ],
        )
        _after_head(handler, task, vdi, fmt, "chunked" in query, length)
    finally:
        logout_basic(handler, session, basic)


def _sr_of(db: object, vdi: str | None, query: dict[str, str]) -> str:
    if vdi is not None:
        return db.get("VDI", vdi)["SR"]  # type: ignore[attr-defined]
    try:
        if query.get("sr_id"):
            db.get("SR", query["sr_id"])  # type: ignore[attr-defined]
            return query["sr_id"]
        if query.get("sr_uuid"):
            return db.ref_by_uuid("SR", query["sr_uuid"])  # type: ignore[attr-defined]
    except XapiError as error:
        raise Refused("400 Bad Request", *error.details) from error
    raise Refused("400 Bad Request", "VDI_MISSING")


def _checked_format(handler: Handler, query: dict[str, str]) -> str:
    fmt = query.get("format", "raw").lower()
    if fmt not in FORMATS:
        raise Refused("404 Not Found", "INTERNAL_ERROR", f"Unknown format {fmt}")
    if fmt != "raw" and "chunked" in query:
        raise Refused("404 Not Found", "INTERNAL_ERROR", "Cannot handle chunked VHD")
    encoding = handler.headers.get("Transfer-Encoding")
    if encoding:
        raise Refused("404 Not Found", "INTERNAL_ERROR", f"Cannot handle encoding: {encoding}")
    return fmt


def _new_target(sim: object, fmt: str, length: int | None, sr: str) -> str:
    """Without `vdi`: only a raw upload of known length makes a new VDI on the SR."""
    if fmt == "vhd":
        raise Refused(
            "400 Bad Request",
            "INTERNAL_ERROR",
            "Importing a VHD directly into an SR not yet supported",
        )
    if length is None:
        raise Refused("400 Bad Request", "INTERNAL_ERROR", "Not enough info supplied to import")
    return sm.new_vdi(
        sim,  # type: ignore[arg-type]
        {
            "SR": sr,
            "name_label": "Imported VDI",
            "virtual_size": length,
            "type": "user",
        },
    )


def _after_head(
    handler: Handler, task: str, vdi: str, fmt: str, chunked: bool, length: int | None
) -> None:
    sim = handler.sim
    db = sim.db
    try:
        sim.inject_fault("import_raw_vdi")
        with in_transfer(handler, vdi), attached(handler, vdi, "RW"), sm.space_errors():
            _receive(handler, task, db.get("VDI", vdi)["uuid"], fmt, chunked, length)
    except XapiError as error:
        tasks.fail(db, task, error)
        write_error_in_body(handler, error)
    except Exception:  # bad VHD, short body, cut connection, disk gone meanwhile
        tasks.fail(db, task, XapiError(*VDI_IO_ERROR))
    else:
        tasks.succeed(db, task, vdi)
    finally:
        sm.after_write(sim, vdi)


def _receive(
    handler: Handler, task: str, vdi_uuid: str, fmt: str, chunked: bool, length: int | None
) -> None:
    sim = handler.sim
    store = sim.store
    throttle = Throttle(sim)
    received = 0
    percent = 0

    def read(count: int) -> bytes:
        # In slices, so that the rate limit and the whole-percent progress move smoothly.
        nonlocal received, percent
        pieces = []
        left = count
        while left:
            piece = handler.rfile.read(min(left, SLICE))
            if not piece:
                break
            pieces.append(piece)
            left -= len(piece)
            received += len(piece)
            throttle.account(len(piece))
            if length:
                now = min(100, received * 100 // length)
                if now > percent:
                    percent = now
                    tasks.set_progress(sim.db, task, percent / 100)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def write(offset: int, data: bytes) -> None:
        # On a pre-zeroed disk, vhd-tool does not write zeros over blocks nobody wrote.
        index = offset // BLOCK_SIZE
        if data != ZERO_BLOCK[: len(data)] or store.is_allocated(vdi_uuid, index):
            store.write(vdi_uuid, offset, data)

    if fmt == "vhd":
        vhdstream.apply_vhd(read, length, write)
    elif chunked:
        _receive_chunked(read, write, store.size(vdi_uuid))
    else:
        _receive_raw(read, write, store.size(vdi_uuid), length)


def _receive_raw(
    read: Callable[[int], bytes], write: Callable[[int, bytes], None], size: int, length: int | None
) -> None:
    """Bytes in place from offset 0: `length` of them, or until the connection closes."""
    offset = 0
    while length is None or offset < length:
        count = BLOCK_SIZE - offset % BLOCK_SIZE
        if length is not None:
            count = min(count, length - offset)
        data = read(count)
        if not data:
            break
        if offset + len(data) > size:
            raise XapiError(*VDI_IO_ERROR)
        write(offset, data)
        offset += len(data)
        if len(data) != count:
            break
    if length is not None and offset != length:
        raise XapiError(*VDI_IO_ERROR)


def _receive_chunked(
    read: Callable[[int], bytes], write: Callable[[int, bytes], None], size: int
) -> None:
    """XAPI's own framing of raw data (vhd-tool chunked.ml): each chunk is a little-endian
    64-bit offset and 32-bit length, then the bytes; offset 0 and length 0 end the stream."""
    while True:
        head = read(CHUNK_HEADER.size)
        if len(head) != CHUNK_HEADER.size:
            raise XapiError(*VDI_IO_ERROR)
        offset, count = CHUNK_HEADER.unpack(head)
        if offset == 0 and count == 0:
            return
        if offset + count > size:
            raise XapiError(*VDI_IO_ERROR)
        while count:
            piece = read(min(count, BLOCK_SIZE - offset % BLOCK_SIZE))
            if not piece:
                raise XapiError(*VDI_IO_ERROR)
            write(offset, piece)
            offset += len(piece)
            count -= len(piece)
