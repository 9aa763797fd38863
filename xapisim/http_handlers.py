"""`GET /export_raw_vdi` and `PUT /import_raw_vdi` (docs/xapi.md §9).

Export steps: authenticate (cookie, query or Basic; else 401 and the task fails) → resolve the
VDI and base by ref or UUID → 302 to the host that sees a local SR → check the format → send the
headers (task-id, no Content-Length, Connection: close) → stream raw or the VHD of vhdstream.py,
block by block, honouring the rate limit, the cut-after switch and cancellation → complete or
fail the task. After the headers, errors only end the body and fail the task, as XAPI does.
Import: same authentication and redirect, Content-Length required, no Transfer-Encoding; 200 and
task-id first, then the body is applied (raw written in place, VHD applied as a patch).
"""

from __future__ import annotations

import base64
import uuid as uuidlib
from collections.abc import Callable, Iterator
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING, Any

from . import tasks, vhdstream
from .api.storage import new_vdi
from .disks import BLOCK_SIZE, ZERO_BLOCK, block_count
from .errors import VDI_IO_ERROR, XapiError
from .transfer import Sender, Throttle

if TYPE_CHECKING:
    from .db import Database
    from .server import Handler

CONTENT_TYPES = {"vhd": "application/vhd", "raw": "application/octet-stream"}


def _session(handler: Handler, query: dict[str, str]) -> tuple[str | None, bool]:
    """(session ref or None, whether we logged in with Basic auth and must log out)."""
    sim = handler.sim
    cookie = SimpleCookie(handler.headers.get("Cookie") or "")
    candidate = cookie["session_id"].value if "session_id" in cookie else query.get("session_id")
    if candidate:
        return (candidate if candidate in sim.db.tables["session"] else None), False
    authorization = handler.headers.get("Authorization") or ""
    if authorization.startswith("Basic "):
        user, _, password = (
            base64.b64decode(authorization[6:]).decode(errors="replace").partition(":")
        )
        try:
            return sim.call(
                sim.master_ref, "session.login_with_password", [user, password, "", "http"]
            ), True
        except XapiError:
            return None, False
    return None, False


def _write_head(handler: Handler, status: str, headers: list[tuple[str, str]]) -> None:
    lines = [f"HTTP/1.1 {status}"] + [
        f"{name}:{value}" if name in ("task-id", "content-type") else f"{name}: {value}"
        for name, value in headers
    ]
    handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    handler.wfile.flush()
    handler.close_connection = True


def _fail_before_start(handler: Handler, task: str | None, status: str, error: XapiError) -> None:
    tasks.fail(handler.sim.db, task, error)
    _write_head(handler, status, [("Connection", "close"), ("content-length", "0")])


def _prologue(handler: Handler, kind: str) -> tuple[dict[str, str], str, str, bool] | None:
    """Shared first steps of both handlers: (query, session, task, logged in), or None if an
    answer (401, 404, 302) was already sent."""
    sim = handler.sim
    query = handler.query()
    given_task = query.get("task_id")
    if given_task and given_task not in sim.db.tables["task"]:
        _write_head(handler, "404 Not Found", [("Connection", "close"), ("content-length", "0")])
        return None
    session, basic = _session(handler, query)
    if session is None:
        tasks.fail(
            sim.db,
            given_task,
            XapiError("SESSION_AUTHENTICATION_FAILED", "", "Authentication failure"),
        )
        _write_head(
            handler,
            "401 Unauthorised",
            [
                ("WWW-Authenticate", 'Basic realm="xapi"'),
                ("Connection", "close"),
                ("content-length", "0"),
            ],
        )
        return None
    task = given_task or tasks.create(sim.db, f"VDI {kind}", "", handler.host_ref, session)
    return query, session, task, basic


def _redirect_if_elsewhere(handler: Handler, sr: str) -> bool:
    sim = handler.sim
    if sim.sr_visible_from(sr, handler.host_ref):
        return False
    target = sim.sr_host(sr)
    location = f"{'https' if sim.tls else 'http'}://{sim.address(target)}{handler.path}"
    _write_head(
        handler,
        "302 Found",
        [("Location", location), ("Connection", "close"), ("content-length", "0")],
    )
    return True


def _locate_disk(
    handler: Handler,
    task: str,
    query: dict[str, str],
    resolve: Callable[[], tuple[str, str | None]],
) -> tuple[str, str | None, dict[str, Any], str] | None:
    """Shared steps of both handlers once the caller is known, before the 200:
    1. resolve the VDI (and the base of a delta export) with `resolve`; if it names nothing,
       404 and the task fails;
    2. 302 to the host that sees the VDI's SR when this one does not;
    3. check the format; if unknown, 404 and the task fails.
    (VDI, base, VDI record, format), or None if an answer was already sent."""
    try:
        vdi, base = resolve()
    except XapiError as error:
        _fail_before_start(handler, task, "404 Not Found", error)
        return None
    record = handler.sim.db.get("VDI", vdi)
    if _redirect_if_elsewhere(handler, record["SR"]):
        return None
    fmt = query.get("format", "raw")
    if fmt not in CONTENT_TYPES:
        _fail_before_start(
            handler, task, "404 Not Found", XapiError("INTERNAL_ERROR", f"Unknown format {fmt}")
        )
        return None
    return vdi, base, record, fmt


def _export_source(db: Database, query: dict[str, str]) -> tuple[str, str | None]:
    """The VDI to send and, for a delta, its base: `vdi=` and `base=`, each a ref or a UUID."""
    vdi = db.resolve("VDI", query.get("vdi", ""))
    base = db.resolve("VDI", query["base"]) if query.get("base") else None
    return vdi, base


def export_raw_vdi(handler: Handler) -> None:
    sim = handler.sim
    db = sim.db
    started = _prologue(handler, "export")
    if started is None:
        return
    query, session, task, basic = started
    try:
        located = _locate_disk(handler, task, query, lambda: _export_source(db, query))
        if located is None:
            return
        vdi, base, record, fmt = located
        sim.bound_tasks.add(task)
        _write_head(
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
        try:
            sim.inject_fault("export_raw_vdi")
            _stream_export(handler, task, vdi, base, fmt)
        except XapiError as error:
            tasks.fail(db, task, error)
        except Exception:  # a cut connection, or the VDI destroyed under the export
            tasks.fail(db, task, XapiError(*VDI_IO_ERROR))
        else:
            tasks.succeed(db, task, None)
        finally:
            sim.bound_tasks.discard(task)
    finally:
        if basic:
            sim.call(sim.master_ref, "session.logout", [session])


def _stream_export(handler: Handler, task: str, vdi: str, base: str | None, fmt: str) -> None:
    sim = handler.sim
    db = sim.db
    record = db.get("VDI", vdi)
    vdi_uuid = record["uuid"]
    size = sim.store.size(vdi_uuid)
    if base is not None:
        base_uuid = db.get("VDI", base)["uuid"]
        blocks = sim.store.delta_blocks(vdi_uuid, base_uuid)
    else:
        base_uuid = None
        blocks = sim.store.full_blocks(vdi_uuid)
    if fmt == "vhd":
        if size > vhdstream.MAX_VHD_SIZE:
            raise XapiError("VDI_TOO_LARGE", vdi, vhdstream.MAX_VHD_SIZE)
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
        wanted = set(blocks) if base_uuid is not None else None
        pieces = (
            index if wanted is None or index in wanted else b""
            for index in range(block_count(size))
        )
        total = size
    cut = sim.faults.cut_export_after
    sim.faults.cut_export_after = None
    sender = Sender(handler, vdi_uuid, size, fmt, cut)
    last_progress = 0.0
    for piece in pieces:
        if tasks.is_cancelling(db, task):
            raise XapiError("TASK_CANCELLED", task)
        if isinstance(piece, int):
            sender.block(piece)
        elif piece:
            sender.send(piece)
        else:  # a raw block outside the delta: zeros
            sender.send(ZERO_BLOCK)
        progress = sender.sent / total if total else 1.0
        if progress - last_progress >= 0.05:
            tasks.set_progress(db, task, progress)
            last_progress = progress
    handler.wfile.flush()


def import_raw_vdi(handler: Handler) -> None:
    sim = handler.sim
    db = sim.db
    started = _prologue(handler, "import")
    if started is None:
        return
    query, session, task, basic = started
    try:
        if handler.headers.get("Transfer-Encoding"):
            _fail_before_start(
                handler,
                task,
                "404 Not Found",
                XapiError("INTERNAL_ERROR", "Cannot handle encoding"),
            )
            return
        length_header = handler.headers.get("Content-Length")
        if length_header is None:
            _fail_before_start(
                handler,
                task,
                "411 Length Required",
                XapiError("INTERNAL_ERROR", "Content-Length required"),
            )
            return
        length = int(length_header)
        located = _locate_disk(
            handler, task, query, lambda: (_import_target(handler, query, length), None)
        )
        if located is None:
            return
        vdi, _, record, fmt = located
        sim.bound_tasks.add(task)
        _write_head(handler, "200 OK", [("Connection", "close"), ("task-id", task)])
        try:
            sim.inject_fault("import_raw_vdi")
            _apply_import(handler, task, record["uuid"], fmt, length)
        except XapiError as error:
            tasks.fail(db, task, error)
        except Exception:  # bad VHD, short body, cut connection, VDI destroyed meanwhile
            tasks.fail(db, task, XapiError(*VDI_IO_ERROR))
        else:
            tasks.succeed(db, task, vdi)
        finally:
            sim.bound_tasks.discard(task)
            sim.store_dirty = True
            if db.exists("VDI", vdi):
                db.update(
                    "VDI", vdi, physical_utilisation=sim.store.allocated_bytes(record["uuid"])
                )
    finally:
        if basic:
            sim.call(sim.master_ref, "session.logout", [session])


def _import_target(handler: Handler, query: dict[str, str], length: int) -> str:
    """The VDI to write: `vdi=` (ref or uuid), or without it a new VDI of the body's size on
    `sr_id=` / `sr_uuid=`, which XAPI allows for raw uploads only."""
    db = handler.sim.db
    if query.get("vdi"):
        return db.resolve("VDI", query["vdi"])
    sr_given = query.get("sr_id") or query.get("sr_uuid")
    if not sr_given or query.get("format", "raw") != "raw":
        raise XapiError("HANDLE_INVALID", "VDI", "")
    sr = db.resolve("SR", sr_given)
    return new_vdi(handler.sim, {"SR": sr, "name_label": "import", "virtual_size": length})


def _apply_import(handler: Handler, task: str, vdi_uuid: str, fmt: str, length: int) -> None:
    sim = handler.sim
    store = sim.store
    throttle = Throttle(sim)
    received = 0

    def read(count: int) -> bytes:
        nonlocal received
        if tasks.is_cancelling(sim.db, task):
            raise XapiError("TASK_CANCELLED", task)
        data = handler.rfile.read(count)
        received += len(data)
        throttle.account(len(data))
        return data

    if fmt == "vhd":
        vhdstream.apply_vhd(read, length, lambda offset, data: store.write(vdi_uuid, offset, data))
        return
    size = store.size(vdi_uuid)
    if length > size:
        raise XapiError(*VDI_IO_ERROR)
    offset = 0
    while offset < length:
        count = min(BLOCK_SIZE - offset % BLOCK_SIZE, length - offset)
        data = read(count)
        if len(data) != count:
            raise XapiError(*VDI_IO_ERROR)
        # Like vhd-tool on a pre-zeroed disk, skip writing zeros over blocks nobody wrote.
        if data != ZERO_BLOCK[:count] or store.is_allocated(vdi_uuid, offset // BLOCK_SIZE):
            store.write(vdi_uuid, offset, data)
        offset += count
        tasks.set_progress(sim.db, task, offset / length)
