"""HTTP handlers of XAPI (docs/xapi.md §9): exports and imports tied to a task of ours.

:class:`HttpHandlersMixin` gives :class:`pools.xapi.XapiClient` ``export_stream`` and
``import_stream``: ``session_id`` and ``task_id`` in the query, 302 followed to the host that
sees the disk (for a streamed upload, found first by an empty probe), 401/403 reported, close-delimited bodies streamed, and the task read after the
stream, because the HTTP status alone does not say whether the transfer succeeded.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from pools.xapi_net import (
    ORIGINATOR,
    TRANSPORT_ERRORS,
    AuthenticationFailed,
    PinnedHTTPSConnection,
    PoolHTTPConnection,
    XapiConnectionError,
    XapiError,
    connection_error,
    failure_from,
)

if TYPE_CHECKING:
    from pools.xapi import XapiClient


class HttpHandlersMixin:
    """HTTP handler helpers for a logged-in client (needs ``call``, ``wait_task``,
    ``destroy_task``, ``url``, ``username``, ``timeout``, ``policy`` and ``_session``)."""

    def http_connection(self, url: str, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return PinnedHTTPSConnection(parts.netloc, policy=self.policy, timeout=timeout)
        return PoolHTTPConnection(parts.netloc, timeout=timeout)

    def http_open(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        *,
        body: Any = None,
        content_length: int | None = None,
        timeout: float | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request to a handler, following 302 redirects; raise on 401/403/other.

        A body that is not bytes can be sent only once, so it goes to the host found by
        :meth:`handler_url` first, and a redirect after that is an error.
        """
        if body is None or isinstance(body, bytes | bytearray):
            return self._open(method, path, query, body, content_length, timeout)[0]
        base = self.handler_url(method, path, query, timeout=timeout)
        return self._open(method, path, query, body, content_length, timeout, base=base, hops=1)[0]

    def handler_url(
        self, method: str, path: str, query: dict[str, str], *, timeout: float | None = None
    ) -> str:
        """The host that serves ``path`` for ``query``, found as XO finds it: an empty request
        without ``task_id`` follows XAPI's 302s (it changes nothing, and its own task fails)."""
        probe = {name: value for name, value in query.items() if name != "task_id"}
        response, base = self._open(method, path, probe, b"", 0, timeout)
        # Close at the headers, as XO does: an import handler answers 200 and then waits for
        # a body (a VHD one reads its footer), so reading the response would hang.
        response.close()
        return base

    def _open(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: Any,
        content_length: int | None,
        timeout: float | None,
        *,
        base: str | None = None,
        hops: int = 4,
    ) -> tuple[http.client.HTTPResponse, str]:
        if self._session is None:
            raise XapiError(f"not logged in to {self.url}")
        base = base or self.url
        target = f"{path}?{urlencode({**query, 'session_id': self._session.handle})}"
        for _hop in range(hops):
            connection = self.http_connection(base, timeout or self.timeout)
            headers = {"Connection": "close", "User-Agent": ORIGINATOR}
            if content_length is not None:
                headers["Content-Length"] = str(content_length)
            try:
                connection.putrequest(method, target, skip_accept_encoding=True)
                for name, value in headers.items():
                    connection.putheader(name, value)
                connection.endheaders()
                if body is not None:
                    _send_body(connection, body)
                response = connection.getresponse()
            except TRANSPORT_ERRORS as error:
                connection.close()
                raise connection_error(error, base) from None
            if response.status == 302:
                location = response.getheader("Location", "")
                response.close()
                connection.close()
                parts = urlsplit(location)
                base = f"{parts.scheme or urlsplit(base).scheme}://{parts.netloc}"
                target = parts.path + (f"?{parts.query}" if parts.query else "")
                continue
            if response.status in (401, 403):
                response.close()
                connection.close()
                raise AuthenticationFailed(
                    ["SESSION_AUTHENTICATION_FAILED", self.username, f"HTTP {response.status}"],
                    self.username,
                )
            if response.status != 200:
                text = response.read(2000).decode("utf-8", "replace")
                connection.close()
                raise XapiError(
                    f"{base}{path} answered HTTP {response.status} {response.reason}: {text}"
                )
            return response, base
        raise XapiError(f"{self.url}{path}: too many redirects")

    def export_stream(
        self, path: str, query: dict[str, str], *, label: str, timeout: float | None = None
    ) -> HttpTransfer:
        """Start a GET export (e.g. ``/export_raw_vdi``) tied to a task of ours.

        Read the body from the returned :class:`HttpTransfer` until it ends, then call its
        ``finish()``: the HTTP status alone does not say whether the export succeeded.
        """
        task_ref = self.call("task.create", label, "")
        try:
            response = self.http_open("GET", path, {**query, "task_id": task_ref}, timeout=timeout)
        except Exception:
            self.destroy_task(task_ref)
            raise
        return HttpTransfer(self, response, task_ref)

    def import_stream(
        self,
        path: str,
        query: dict[str, str],
        body: bytes | Iterable[bytes],
        content_length: int,
        *,
        label: str,
        timeout: float | None = None,
    ) -> Any:
        """PUT a body of known length (e.g. ``/import_raw_vdi``) and return the task's result."""
        task_ref = self.call("task.create", label, "")
        try:
            try:
                response = self.http_open(
                    "PUT",
                    path,
                    {**query, "task_id": task_ref},
                    body=body,
                    content_length=content_length,
                    timeout=timeout,
                )
            except XapiConnectionError:
                # A handler that fails (SR_FULL, VDI_IO_ERROR…) closes the connection while
                # the body is still being sent: its task says why, not the broken pipe.
                self._raise_if_failed(task_ref)
                raise
            response.read()
            response.close()
            return self.wait_task(task_ref, timeout=timeout)
        finally:
            self.destroy_task(task_ref)

    def _raise_if_failed(self, task_ref: str, wait: float = 5.0) -> None:
        """Raise the task's error if it fails within ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                record = self.call("task.get_record", task_ref)
            except XapiError:
                return
            if record.get("status") in ("failure", "cancelled"):
                details = list(record.get("error_info") or []) or ["TASK_CANCELLED", task_ref]
                raise failure_from(details, url=self.url, username=self.username) from None
            if record.get("status") != "pending":
                return
            time.sleep(0.1)


def _send_body(connection: http.client.HTTPConnection, body: Any) -> None:
    if isinstance(body, bytes | bytearray):
        connection.send(body)
        return
    for chunk in body:
        connection.send(chunk)


class HttpTransfer:
    """The body of a close-delimited export, and the task that says whether it succeeded."""

    def __init__(self, client: XapiClient, response: http.client.HTTPResponse, task_ref: str):
        self.client = client
        self.response = response
        self.task_ref = task_ref
        self._first = True

    def read(self, size: int = 1 << 20) -> bytes:
        chunk = self.response.read(size)
        if self._first and chunk:
            self._first = False
            # xapi-project/xen-api#4603: an error response can come inside a 200 body.
            if chunk.startswith(b"HTTP/"):
                line = chunk.split(b"\r\n", 1)[0].decode("latin-1")
                raise XapiError(f"the export failed on the host: {line}")
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def finish(self, timeout: float | None = 60.0) -> Any:
        """Close the body, wait on the task, destroy it; raise its error if it failed."""
        self.response.close()
        try:
            return self.client.wait_task(self.task_ref, timeout=timeout)
        finally:
            self.client.destroy_task(self.task_ref)
