"""HTTP front of one simulated host: XML-RPC at `/`, `/RPC2` and any unmatched POST path,
JSON-RPC at `/jsonrpc`, the disk handlers, optional TLS (docs/xapi.md §1, §9).

Paths dispatch by longest prefix like XAPI's http_svr, so XO's `POST /xmlrpc` and
`/export_raw_vdi/` work. The server tracks its open connections so the simulator can cut them
(event stream drops, toolstack restart, failover) and can stop and resume listening on its port.
"""

from __future__ import annotations

import functools
import socket
import ssl
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from . import http_export, http_import, jsonrpc, wire
from .api import REGISTRY
from .errors import ConnectionDropped, XapiError

if TYPE_CHECKING:
    from .pool import Simulator

ROUTES = ("/jsonrpc", "/json", "/export_raw_vdi", "/import_raw_vdi", "/RPC2", "/")


def route(path: str) -> str:
    return max((prefix for prefix in ROUTES if path.startswith(prefix)), key=len, default="/")


@functools.cache
def list_methods() -> list[str]:
    """`system.listMethods`: every public method and its `Async.` twin (no `sim.` ones). The
    registry is complete once the package is imported, so the list is built once."""
    names = [
        name for name, method in REGISTRY.items() if method.listed and not name.startswith("sim.")
    ]
    names += [
        f"Async.{name}" for name, method in REGISTRY.items() if method.asyncable and method.listed
    ]
    return sorted(names)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle holds the body until
    # the client's delayed ACK (40 ms) and every call takes 40 ms.
    disable_nagle_algorithm = True
    server_version = "xapi"
    sys_version = ""
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the simulator's stdout carries only the ready line."""

    @property
    def sim(self) -> Simulator:
        return self.server.owner.sim

    @property
    def host_ref(self) -> str:
        return self.server.owner.host

    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        target = route(urlsplit(self.path).path)
        if target in ("/jsonrpc", "/json"):
            self.json_rpc()
        elif target in ("/export_raw_vdi", "/import_raw_vdi"):
            self.reply(404, b"", "text/plain")
        else:
            self.xml_rpc()

    def do_GET(self) -> None:
        if route(urlsplit(self.path).path) == "/export_raw_vdi":
            http_export.export_raw_vdi(self)
        else:
            self.reply(200, b"<html><body>xapisim</body></html>", "text/html")

    def do_PUT(self) -> None:
        if route(urlsplit(self.path).path) == "/import_raw_vdi":
            http_import.import_raw_vdi(self)
        else:
            self.reply(404, b"", "text/plain")

    def _call(self, name: str, params: list[Any]) -> Any:
        return self.sim.call(self.host_ref, name, params, connection=self.connection)

    def xml_rpc(self) -> None:
        body = self.read_body()
        try:
            name, params = wire.parse_call(body)
        except wire.RequestParseError as error:
            page = (
                f"<html><body><h1>500 Internal Error</h1>Xmlrpc.Parse_error({error})</body></html>"
            )
            self.reply(500, page.encode(), "text/html")
            return
        if name == "system.listMethods":
            self.reply(200, wire.bare_response(list_methods()), "text/xml")
            return
        try:
            payload = wire.success_response(self._call(name, params))
        except XapiError as error:
            payload = wire.failure_response(error.details)
        except ConnectionDropped:
            self.close_connection = True
            return
        except Exception as error:  # a simulator bug: answer like XAPI's INTERNAL_ERROR
            traceback.print_exc()
            payload = wire.failure_response(["INTERNAL_ERROR", repr(error)])
        self.reply(200, payload, "text/xml")

    def json_rpc(self) -> None:
        body = self.read_body()

        def call(name: str, params: list[Any]) -> Any:
            if name == "system.listMethods":
                return list_methods()
            return self._call(name, params)

        try:
            payload = jsonrpc.handle(body, call)
        except ConnectionDropped:
            self.close_connection = True
            return
        except ValueError as error:
            self.reply(500, f"JSON-RPC parse error: {error}".encode(), "text/plain")
            return
        self.reply(200, payload, "application/json")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: HostServer

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        connections = self.owner.connections
        connections.add(request)
        try:
            if self.owner.tls_context is not None:
                raw = request
                try:
                    request = self.owner.tls_context.wrap_socket(raw, server_side=True)
                except (ssl.SSLError, OSError):
                    self.shutdown_request(raw)
                    return
                finally:
                    connections.discard(raw)
                connections.add(request)
            super().process_request_thread(request, client_address)
        finally:
            connections.discard(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client resets are normal here (cut exports, dropped streams)."""


class HostServer:
    """The listening socket of one host, which can be stopped and resumed on the same port."""

    def __init__(
        self, sim: Simulator, host: str, address: str, port: int, tls_context: ssl.SSLContext | None
    ):
        self.sim = sim
        self.host = host
        self.address = address
        self.port = port
        self.tls_context = tls_context
        self.connections: set[socket.socket] = set()
        self.httpd: _Server | None = None
        self.thread: threading.Thread | None = None

    def listen(self) -> int:
        httpd = _Server((self.address, self.port), Handler)
        httpd.owner = self
        self.port = httpd.server_address[1]
        self.httpd = httpd
        self.thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"xapisim-http-{self.port}",
            daemon=True,
        )
        self.thread.start()
        return self.port

    def stop_listening(self, keep: Any = None) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        self.drop_connections(keep=keep)

    def drop_connections(self, keep: Any = None) -> None:
        for connection in list(self.connections):
            if connection is keep:
                continue
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
