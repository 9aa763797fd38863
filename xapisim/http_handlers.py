"""What `/export_raw_vdi` and `/import_raw_vdi` share (docs/xapi.md §9.1): who is calling, the
answers XAPI gives before its handler's task exists (401, 500, 302), the HTML error page that
may also land inside a 200 body, and the control-domain VBDs of a transfer (docs/xapi.md §9.7).
The handlers themselves are http_export.py and http_import.py."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING

from . import sm
from .devices import plug_into_dom0, unplug_from_dom0
from .errors import XapiError

if TYPE_CHECKING:
    from .server import Handler


class MissingParameter(Exception):
    """A required query parameter is absent (XAPI: `failwith "Missing vdi query parameter"`)."""


def session_of(handler: Handler, query: dict[str, str]) -> tuple[str | None, bool]:
    """(session ref or None, whether we logged in with Basic auth and must log out). The
    `session_id` cookie wins over the query (xapi_http.ml `lookup_param_of_req`)."""
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


def write_head(handler: Handler, status: str, headers: list[tuple[str, str]]) -> None:
    """A response head as XAPI writes it (its own headers are `name:value`)."""
    lines = [f"HTTP/1.1 {status}"] + [
        f"{name}:{value}" if name in ("task-id", "content-type") else f"{name}: {value}"
        for name, value in headers
    ]
    handler.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    handler.wfile.flush()
    handler.close_connection = True


def error_page(status: str, title: str, text: str) -> bytes:
    """A whole `http_svr.ml` error response (status line, headers, HTML body)."""
    body = f"<html><body><h1>{title}</h1>{text}</body></html>".encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: text/html\r\nconnection: close\r\n"
        f"cache-control: no-cache, no-store\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def internal_error_page(error: BaseException) -> bytes:
    """`response_internal_error`: what XAPI sends for an exception a handler let through."""
    if isinstance(error, XapiError):
        detail = f"Server_error({', '.join(error.details)})"
    else:
        detail = f"Failure({error})"
    return error_page(
        "500 Internal Error",
        "HTTP 500 internal server error",
        "An unexpected error occurred; please wait a while and try again. If the problem "
        "persists, please contact your support representative."
        f"<h1> Additional information </h1>{detail}",
    )


def send_internal_error(handler: Handler, error: BaseException) -> None:
    """A 500 before any header of the handler: the caller's task is left as it was."""
    try:
        handler.wfile.write(internal_error_page(error))
        handler.wfile.flush()
    except OSError:
        pass
    handler.close_connection = True


def write_error_in_body(handler: Handler, error: BaseException) -> None:
    """After the 200, an error still gets XAPI's 500 page, inside the body (xen-api#4603)."""
    send_internal_error(handler, error)


def send_unauthorised(handler: Handler) -> None:
    """401 with XAPI's page; a `task_id` given is left pending (docs/xapi.md §9.1)."""
    handler.wfile.write(
        error_page(
            "401 Unauthorised",
            "HTTP 401 unauthorised",
            "Please check your credentials and retry.",
        ).replace(
            b"content-type: text/html\r\n",
            b'content-type: text/html\r\nWWW-Authenticate: Basic realm="xapi"\r\n',
        )
    )
    handler.wfile.flush()
    handler.close_connection = True


def send_status(handler: Handler, status: str) -> None:
    """A bare status with no body (404 and 400 of the handlers' own checks)."""
    write_head(handler, status, [("Connection", "close"), ("content-length", "0")])


def vdi_of_query(db: object, query: dict[str, str], name: str = "vdi") -> str:
    """`vdi=` (or `base=`) as a ref or a UUID (importexport.ml `vdi_of_req`): a ref that names
    nothing is looked up as a UUID, so a bad value is UUID_INVALID ["VDI", value]."""
    if name not in query:
        raise MissingParameter(f"Missing {name} query parameter")
    value = query[name]
    if value in db.tables["VDI"]:  # type: ignore[attr-defined]
        return value
    return db.ref_by_uuid("VDI", value)  # type: ignore[attr-defined]


def redirect_if_elsewhere(handler: Handler, sr: str) -> bool:
    """302 to the host that sees a local SR, with the same path and query."""
    sim = handler.sim
    if sim.sr_visible_from(sr, handler.host_ref):
        return False
    target = sim.sr_host(sr)
    location = f"{'https' if sim.tls else 'http'}://{sim.address(target)}{handler.path}"
    write_head(
        handler,
        "302 Found",
        [("Location", location), ("Connection", "close"), ("content-length", "0")],
    )
    return True


@contextmanager
def in_transfer(handler: Handler, vdi: str) -> Iterator[None]:
    """Count a transfer of `vdi` (the GC leaves its chain alone) and kick the GC after it."""
    sim = handler.sim
    uuid = sim.db.get("VDI", vdi)["uuid"]
    sim.transfers[uuid] = sim.transfers.get(uuid, 0) + 1
    try:
        yield
    finally:
        left = sim.transfers.get(uuid, 1) - 1
        if left:
            sim.transfers[uuid] = left
        else:
            sim.transfers.pop(uuid, None)
        sim.coalescer.kick()


@contextmanager
def attached(handler: Handler, vdi: str, mode: str) -> Iterator[str]:
    """`with_block_attached_device`: a dom0 VBD on `vdi` for the body (docs/xapi.md §9.7)."""
    db = handler.sim.db
    dom0 = db.get("host", handler.host_ref)["control_domain"]
    vbd = plug_into_dom0(db, dom0, vdi, mode)
    try:
        yield vbd
    finally:
        unplug_from_dom0(db, vbd)


def logout_basic(handler: Handler, session: str, basic: bool) -> None:
    if basic:
        handler.sim.call(handler.sim.master_ref, "session.logout", [session])


__all__ = ["attached", "in_transfer", "sm"]
