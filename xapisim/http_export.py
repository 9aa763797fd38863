"""`GET /export_raw_vdi` (docs/xapi.md §9.1-§9.3, §9.7), in XAPI's order (export_raw_vdi.ml).

Steps: credentials (else 401, a given task left pending) → `vdi` (missing or naming nothing:
HTTP 500, task left pending) → 302 to the host that sees a local SR → the task (`task_id` or a
new one) → format (unknown: 404, task failed) → the 200 head (task-id, no Content-Length,
Connection: close) → then, failures only end the body (XAPI's 500 page written into it) and
fail the task: VDI_TOO_LARGE, the dom0 VBD of the disk, `base` (UUID_INVALID) and its VBD, the
stream. `task.cancel` does not stop it (docs/xapi.md §8.7); progress moves by whole percents.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from . import tasks, vhdstream
from .disks import BLOCK_SIZE, ZERO_BLOCK, block_count
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
from .transfer import Sender

if TYPE_CHECKING:
    from .server import Handler

CONTENT_TYPES = {"vhd": "application/vhd", "raw": "application/octet-stream"}


def export_raw_vdi(handler: Handler) -> None:
    sim = handler.sim
    db = sim.db
    query = handler.query()
    session, basic = session_of(handler, query)
    if session is None:
        send_unauthorised(handler)
        return
    try:
        try:
            vdi = vdi_of_query(db, query)
        except (XapiError, MissingParameter) as error:
            send_internal_error(handler, error)
            return
        record = db.get("VDI", vdi)
        if redirect_if_elsewhere(handler, record["SR"]):
            return
        given = query.get("task_id")
        if given and given not in db.tables["task"]:
            send_internal_error(handler, XapiError("HANDLE_INVALID", "task", given))
            return
        task = given or tasks.create(db, "Exporting raw VDI", "", handler.host_ref, session)
        fmt = query.get("format", "raw").lower()
        if fmt not in CONTENT_TYPES:
            tasks.fail(db, task, XapiError("INTERNAL_ERROR", f"Unknown format {fmt}"))
            send_status(handler, "404 Not Found")
            return
        write_head(
            handler,
            "200 OK",
            [
                ("Connection", "close"),
                ("Cache-Control", "no-cache, no-store"),
                ("task-id", task),
                ("content-type", CONTENT_TYPES[fmt]),
                ("content-disposition", f'attachment; filename="{record["uuid"]}.{fmt}"'),
            ],
        )
        _after_head(handler, task, vdi, query, fmt)
    finally:
        logout_basic(handler, session, basic)


def _after_head(handler: Handler, task: str, vdi: str, query: dict[str, str], fmt: str) -> None:
    sim = handler.sim
    db = sim.db
    try:
        sim.inject_fault("export_raw_vdi")
        size = db.get("VDI", vdi)["virtual_size"]
        if fmt == "vhd" and size > vhdstream.MAX_VHD_SIZE:
            raise XapiError("VDI_TOO_LARGE", vdi, vhdstream.MAX_VHD_SIZE)
        with in_transfer(handler, vdi), attached(handler, vdi, "RO"):
            base = vdi_of_query(db, query, "base") if query.get("base") else None
            if base is None:
                _stream(handler, task, vdi, None, fmt)
            else:
                with in_transfer(handler, base), attached(handler, base, "RO"):
                    _stream(handler, task, vdi, base, fmt)
    except XapiError as error:
        tasks.fail(db, task, error)
        write_error_in_body(handler, error)
    except Exception:  # a cut connection, or the disk gone under the export
        tasks.fail(db, task, XapiError(*VDI_IO_ERROR))
    else:
        tasks.succeed(db, task, None)


def _stream(handler: Handler, task: str, vdi: str, base: str | None, fmt: str) -> None:
    sim = handler.sim
    db = sim.db
    vdi_uuid = db.get("VDI", vdi)["uuid"]
    size = sim.store.size(vdi_uuid)
    if base is not None:
        base_uuid = db.get("VDI", base)["uuid"]
        blocks = sim.store.delta_blocks(vdi_uuid, base_uuid)
    else:
        base_uuid = None
        blocks = sim.store.full_blocks(vdi_uuid)
    if fmt == "vhd":
        parent = None
        if base_uuid is not None:
            leaf = sim.store.leaf(base_uuid)
            base_sr = db.get("SR", db.get("VDI", base)["SR"])["uuid"]
            parent = vhdstream.Parent(
                uuidlib.UUID(leaf.uuid).bytes,
                leaf.mtime,
                sim.store.node_path_on_sr(base_sr, leaf.uuid),
            )
        pieces: Iterator[bytes | int] = vhdstream.export_stream(size, blocks, None, parent)
        total = vhdstream.stream_size(size, len(blocks))
    else:
        # Raw with a base: the changed blocks, zeros elsewhere (a negative index says "zeros").
        wanted = set(blocks) if base_uuid is not None else None
        pieces = (
            index if wanted is None or index in wanted else -1 - index
            for index in range(block_count(size))
        )
        total = size
    cut = sim.faults.cut_export_after
    sim.faults.cut_export_after = None
    percent = 0

    def progress(sent: int) -> None:
        # vhd-tool reports whole percents; XAPI sets progress = pct / 100.
        nonlocal percent
        now = sent * 100 // total if total else 100
        if now > percent:
            percent = now
            tasks.set_progress(db, task, percent / 100)

    sender = Sender(handler, vdi_uuid, size, fmt, cut, progress)
    for piece in pieces:
        if isinstance(piece, bytes):
            sender.send(piece)
        elif piece >= 0:
            sender.block(piece)
        else:
            index = -1 - piece
            sender.send(ZERO_BLOCK[: min(BLOCK_SIZE, size - index * BLOCK_SIZE)])
        progress(sender.sent)
    handler.wfile.flush()
