"""The XAPI client: the one module of xoweb that talks to pools, over the official XenAPI SDK.

Everything that talks to a pool goes through :class:`XapiClient`:

* login with a fixed originator, ``HOST_IS_SLAVE`` followed to the master, logout always;
* ``SESSION_INVALID``: the SDK logs in again and retries by itself; the client notices that the
  session changed (``session_renewals``) so that the watcher can restart from a full fetch;
* a timeout on every call (the socket timeout is set per call; ``event.from`` gets its own);
* TLS either verified against the system CAs or pinned to a SHA-256 certificate fingerprint
  (trust on first use when none is pinned yet);
* async calls that wait on their task with a progress callback;
* HTTP helpers for the export/import handlers: ``session_id`` and ``task_id``, 302 followed,
  401 reported, close-delimited bodies streamed, the task read after the stream to know whether
  the transfer succeeded (reference/xapi.md §9).

Errors are :class:`XapiError` subclasses with messages a person can act on. The password is
never put in a message or a log line.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import socket
import ssl
import time
import xmlrpc.client
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit
from xml.parsers.expat import ExpatError

import XenAPI

logger = logging.getLogger(__name__)

ORIGINATOR = "xoweb"
API_VERSION = "2.0"
NULL_REF = "OpaqueRef:NULL"


# --- errors ------------------------------------------------------------------------------------


class XapiError(Exception):
    """A pool could not do what was asked; ``str()`` is a message for a person."""

    code = ""


class XapiConnectionError(XapiError):
    """No XAPI answered: bad address, refused, timed out, reset, TLS failure."""


class TlsFingerprintMismatch(XapiConnectionError):
    """The server's certificate is not the pinned one."""

    def __init__(self, address: str, expected: str, actual: str) -> None:
        self.address, self.expected, self.actual = address, expected, actual
        super().__init__(
            f"the TLS certificate of {address} has fingerprint {actual}, "
            f"but {expected} is pinned: if the certificate was replaced on purpose, "
            "pin the new fingerprint"
        )


class XapiFailure(XapiError):
    """XAPI answered with an error (``Status: Failure``)."""

    def __init__(self, details: list[str], message: str = "") -> None:
        self.details = [str(item) for item in details] or ["UNKNOWN_ERROR"]
        self.code = self.details[0]
        self.params = self.details[1:]
        super().__init__(message or f"XAPI error {' '.join(self.details)}")


class AuthenticationFailed(XapiFailure):
    def __init__(self, details: list[str], username: str = "") -> None:
        who = f" for user {username!r}" if username else ""
        super().__init__(
            details,
            f"XAPI refused the user name or password{who} (SESSION_AUTHENTICATION_FAILED)",
        )


class HostIsSlave(XapiFailure):
    """Login on a pool member: ``params[0]`` is the master's address."""

    def __init__(self, details: list[str], url: str = "") -> None:
        master = details[1] if len(details) > 1 else "?"
        super().__init__(
            details,
            f"{url or 'this host'} is a pool member, not the master: the master is at {master}",
        )
        self.master_address = master


class SessionRenewed(XapiError):
    """The session was replaced during a call (``SESSION_INVALID``, then a new login)."""

    code = "SESSION_INVALID"


def _failure(details: list, *, url: str = "", username: str = "") -> XapiFailure:
    code = str(details[0]) if details else ""
    if code == "SESSION_AUTHENTICATION_FAILED":
        return AuthenticationFailed(details, username)
    if code == "HOST_IS_SLAVE":
        return HostIsSlave(details, url)
    return XapiFailure(details)


def _connection_error(error: BaseException, url: str) -> XapiConnectionError:
    """A message that says what went wrong on the way to ``url``."""
    if isinstance(error, TlsFingerprintMismatch):
        return error
    if isinstance(error, socket.gaierror):
        host = urlsplit(url).hostname
        return XapiConnectionError(f"cannot resolve the host name {host!r} of {url}")
    if isinstance(error, ConnectionRefusedError):
        return XapiConnectionError(f"connection refused by {url}: is XAPI running there?")
    if isinstance(error, TimeoutError | socket.timeout):
        return XapiConnectionError(f"{url} did not answer in time")
    if isinstance(error, ssl.SSLCertVerificationError):
        return XapiConnectionError(
            f"the TLS certificate of {url} is not trusted ({error.verify_message}): "
            "pin its fingerprint instead of verifying it against the certificate authorities"
        )
    if isinstance(error, ssl.SSLError):
        return XapiConnectionError(f"TLS failed with {url}: {error.reason or error}")
    if isinstance(error, xmlrpc.client.ProtocolError):
        return XapiConnectionError(
            f"{url} answered HTTP {error.errcode} {error.errmsg}: is it a XAPI server?"
        )
    if isinstance(error, xmlrpc.client.Fault):
        return XapiConnectionError(f"{url} answered with an XML-RPC fault: {error.faultString}")
    if isinstance(error, http.client.HTTPException | xmlrpc.client.ResponseError):
        return XapiConnectionError(f"{url} broke the connection ({type(error).__name__})")
    if isinstance(error, ConnectionError):
        return XapiConnectionError(f"connection to {url} lost ({error.strerror or error})")
    if isinstance(error, OSError):
        return XapiConnectionError(f"cannot reach {url}: {error.strerror or error}")
    return XapiConnectionError(f"{url} sent an answer that is not XAPI's ({error})")


_TRANSPORT_ERRORS = (
    OSError,
    http.client.HTTPException,
    xmlrpc.client.ProtocolError,
    xmlrpc.client.ResponseError,
    xmlrpc.client.Fault,
    ValueError,
    ExpatError,  # a body that is not XML-RPC
)


# --- addresses and fingerprints -----------------------------------------------------------------


def normalise_url(text: str) -> str:
    """``scheme://host[:port]`` from what a person typed; https is assumed without a scheme."""
    text = (text or "").strip()
    if not text:
        raise ValueError("enter the address of the pool master, e.g. https://10.0.0.1")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the address must start with https:// or http://, not {parts.scheme}://")
    if parts.username or parts.password:
        raise ValueError("put the user name and password in their own fields, not in the address")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port in {text!r} is not a number between 1 and 65535") from None
    host = parts.hostname
    if not host or any(char in host for char in " /\\"):
        raise ValueError(f"{text!r} has no valid host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            "give only the master's address (scheme, host and port), without a path or query"
        )
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def url_for_address(address: str, like: str) -> str:
    """The URL of a host known by its XAPI ``address``, with the scheme (and port) of ``like``.

    XAPI gives bare addresses (``10.0.0.2``); the simulator gives ``host:port``.
    """
    if "://" in address:
        return normalise_url(address)
    reference = urlsplit(like)
    has_port = address.count(":") == 1 or address.startswith("[")
    netloc = address if has_port else address + (f":{reference.port}" if reference.port else "")
    return normalise_url(f"{reference.scheme}://{netloc}")


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:…`` (32 bytes) from a SHA-256 fingerprint written with or without separators."""
    raw = (text or "").strip()
    for prefix in ("sha256:", "sha256="):
        if raw.lower().startswith(prefix):
            raw = raw[len(prefix) :]
    digits = raw.replace(":", "").replace(" ", "").replace("-", "").lower()
    if len(digits) != 64 or any(char not in "0123456789abcdef" for char in digits):
        raise ValueError(
            "a SHA-256 fingerprint is 64 hexadecimal digits, optionally in pairs separated by colons"
        )
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2)).upper()


def certificate_fingerprint(der: bytes) -> str:
    return normalise_fingerprint(hashlib.sha256(der).hexdigest())


def fetch_certificate_fingerprint(url: str, timeout: float = 5.0) -> str:
    """The SHA-256 fingerprint of the certificate ``url`` presents (for trust on first use)."""
    parts = urlsplit(normalise_url(url))
    context = _unverified_context()
    try:
        with (
            socket.create_connection((parts.hostname, parts.port or 443), timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            return certificate_fingerprint(tls.getpeercert(binary_form=True))
    except OSError as error:
        raise _connection_error(error, url) from None


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- connections --------------------------------------------------------------------------------


class _TlsPolicy:
    """How one client checks certificates: CA verification, or pinned fingerprints per address.

    In pin mode an address with no pinned fingerprint is trusted on first use and remembered;
    ``on_new_fingerprint(address, fingerprint)`` lets the caller store it.
    """

    def __init__(
        self,
        mode: str,
        pinned: dict[str, str],
        on_new_fingerprint: Callable[[str, str], None] | None,
    ) -> None:
        self.mode = mode
        self.pinned = dict(pinned)
        self.on_new_fingerprint = on_new_fingerprint

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context() if self.mode == "ca" else _unverified_context()

    def check(self, address: str, der: bytes) -> None:
        if self.mode == "ca":
            return
        actual = certificate_fingerprint(der)
        expected = self.pinned.get(address)
        if expected is None:
            self.pinned[address] = actual
            if self.on_new_fingerprint:
                self.on_new_fingerprint(address, actual)
            return
        if expected != actual:
            raise TlsFingerprintMismatch(address, expected, actual)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, policy: _TlsPolicy, timeout: float) -> None:
        super().__init__(host, timeout=timeout, context=policy.context())
        self._policy = policy
        self._address = host

    def connect(self) -> None:
        super().connect()
        try:
            self._policy.check(f"https://{self._address}", self.sock.getpeercert(binary_form=True))
        except TlsFingerprintMismatch:
            self.sock.close()
            self.sock = None
            raise


class _Transport(xmlrpc.client.Transport):
    """An XML-RPC transport with a per-call socket timeout and the client's TLS policy."""

    def __init__(self, *, https: bool, policy: _TlsPolicy, timeout: float) -> None:
        super().__init__()
        self.https = https
        self.policy = policy
        self.timeout = timeout
        self.aborted = False

    def make_connection(self, host):
        if self.aborted:
            raise XapiConnectionError("the call was aborted")
        if self._connection and host == self._connection[0]:
            connection = self._connection[1]
        else:
            chost, self._extra_headers, _x509 = self.get_host_info(host)
            if self.https:
                connection = _PinnedHTTPSConnection(chost, policy=self.policy, timeout=self.timeout)
            else:
                connection = http.client.HTTPConnection(chost, timeout=self.timeout)
            self._connection = host, connection
        connection.timeout = self.timeout
        if connection.sock is not None:
            connection.sock.settimeout(self.timeout)
        return connection


# --- the client ---------------------------------------------------------------------------------


class _Session(XenAPI.Session):
    """The SDK's session, with one switch: ``retry_session = False`` makes ``SESSION_INVALID``
    raise instead of the SDK's silent re-login and retry.

    ``event.from`` needs it: retried on a new session with a token of the old one, it would
    wait its whole timeout before the watcher could notice that it must resync.
    """

    retry_session = True

    def xenapi_request(self, methodname, params):
        if self.retry_session or methodname.startswith("login") or "logout" in methodname:
            return super().xenapi_request(methodname, params)
        result = getattr(self, methodname)(self._session, *params)
        if isinstance(result, dict) and result.get("Status") == "Success" and "Value" in result:
            return result["Value"]
        if isinstance(result, dict) and result.get("ErrorDescription"):
            raise XenAPI.Failure(result["ErrorDescription"])
        raise xmlrpc.client.Fault(500, f"unexpected response to {methodname}")


class XapiClient:
    """A logged-in XAPI session on a pool master, with timeouts and error translation.

    Use it as a context manager (login, then logout whatever happens)::

        with XapiClient(url, "root", password, timeout=10) as client:
            vms = client.get_all_records("VM")
    """

    def __init__(
        self,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        tls_mode: str = "pin",
        fingerprints: dict[str, str] | None = None,
        on_new_fingerprint: Callable[[str, str], None] | None = None,
        follow_master: bool = True,
    ) -> None:
        self.url = normalise_url(url)
        self.username = username
        self._password = password
        self.timeout = timeout
        self.follow_master = follow_master
        self.policy = _TlsPolicy(tls_mode, fingerprints or {}, on_new_fingerprint)
        self.session_renewals = 0
        self._session: XenAPI.Session | None = None
        self._transport: _Transport | None = None

    def __repr__(self) -> str:
        return f"<XapiClient {self.username}@{self.url}>"

    def __enter__(self) -> XapiClient:
        self.login()
        return self

    def __exit__(self, *exc_info) -> None:
        self.logout()

    # -- session --

    def login(self) -> None:
        """Log in; on ``HOST_IS_SLAVE`` switch to the master it names (once) and log in there."""
        try:
            self._login_at(self.url)
        except HostIsSlave as error:
            if not self.follow_master:
                raise
            master_url = url_for_address(error.master_address, like=self.url)
            logger.info("%s is a pool member; following it to the master %s", self.url, master_url)
            self._login_at(master_url)

    def _login_at(self, url: str) -> None:
        self._close_session()
        parts = urlsplit(url)
        self._transport = _Transport(
            https=parts.scheme == "https", policy=self.policy, timeout=self.timeout
        )
        session = _Session(url + "/", transport=self._transport)
        try:
            session.login_with_password(self.username, self._password, API_VERSION, ORIGINATOR)
        except XenAPI.Failure as failure:
            self._transport.close()
            raise _failure(failure.details, url=url, username=self.username) from None
        except _TRANSPORT_ERRORS as error:
            self._transport.close()
            raise _connection_error(error, url) from None
        self._session = session
        self.url = url

    def logout(self) -> None:
        """End the session (XAPI keeps sessions for 24 h otherwise); never raises."""
        if self._session is None:
            return
        try:
            self._set_timeout(min(self.timeout, 5.0))
            if self._transport is not None:
                self._transport.aborted = False  # an aborted client still ends its session
            self._session.xenapi.session.logout()
        except Exception as error:  # the pool may be gone: nothing to clean up then
            logger.debug("logout from %s failed: %s", self.url, type(error).__name__)
        self._close_session()

    def _close_session(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._session = None
        self._transport = None

    def abort(self) -> None:
        """Break a call waiting in another thread (e.g. ``event.from``); the client is done.

        Shutting the socket down is not enough on its own: the XML-RPC transport would retry
        on a fresh connection, so the transport refuses new connections first.
        """
        transport = self._transport
        if transport is None:
            return
        transport.aborted = True
        connection = transport._connection[1] if transport._connection else None
        if connection is not None and connection.sock is not None:
            try:
                connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    @property
    def logged_in(self) -> bool:
        return self._session is not None

    # -- calls --

    def _set_timeout(self, timeout: float) -> None:
        if self._transport is not None:
            self._transport.timeout = timeout

    def call(
        self, method: str, *args: Any, timeout: float | None = None, retry_session: bool = True
    ) -> Any:
        """Call ``Class.method`` (``Async.Class.method`` too) with the session prepended.

        On ``SESSION_INVALID`` the SDK logs in again and retries, unless ``retry_session`` is
        false: then :class:`XapiFailure` ``SESSION_INVALID`` is raised.
        """
        if self._session is None:
            raise XapiError(f"not logged in to {self.url}")
        handle = self._session.handle
        self._set_timeout(timeout or self.timeout)
        self._session.retry_session = retry_session
        target = self._session.xenapi
        for part in method.split("."):
            target = getattr(target, part)
        try:
            result = target(*args)
        except XenAPI.Failure as failure:
            raise _failure(failure.details, url=self.url, username=self.username) from None
        except xmlrpc.client.Fault as fault:
            if "valid session" in str(fault.faultString):
                raise SessionRenewed(f"{self.url} keeps refusing new sessions") from None
            raise _connection_error(fault, self.url) from None
        except _TRANSPORT_ERRORS as error:
            if self._transport is not None:
                self._transport.close()
            raise _connection_error(error, self.url) from None
        if self._session is not None and self._session.handle != handle:
            self.session_renewals += 1
        return result

    def get_all_records(self, xapi_class: str) -> dict[str, dict]:
        return self.call(f"{xapi_class}.get_all_records")

    def event_inject(self, xapi_class: str, ref: str) -> str:
        return self.call("event.inject", xapi_class, ref)

    def event_from(self, classes: Iterable[str], token: str, timeout: float) -> dict:
        """One ``event.from``; ``SESSION_INVALID`` is raised, never retried: the token is void."""
        # The client waits a little longer than the server, so a quiet pool is not an error.
        return self.call(
            "event.from",
            list(classes),
            token,
            float(timeout),
            timeout=timeout + 10.0,
            retry_session=False,
        )

    # -- tasks --

    def call_async(
        self,
        method: str,
        *args: Any,
        progress: Callable[[float], None] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """``Async.<method>``, then wait on its task; returns the task's parsed result."""
        task_ref = self.call(f"Async.{method}", *args)
        try:
            return self.wait_task(task_ref, progress=progress, timeout=timeout)
        finally:
            self.destroy_task(task_ref)

    def wait_task(
        self,
        task_ref: str,
        *,
        progress: Callable[[float], None] | None = None,
        timeout: float | None = None,
        poll_interval: float = 0.2,
    ) -> Any:
        """Wait until the task leaves pending/cancelling; return its result or raise its error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_progress = None
        while True:
            record = self.call("task.get_record", task_ref)
            status = record.get("status")
            value = float(record.get("progress", 0.0))
            if progress is not None and value != last_progress:
                progress(value)
                last_progress = value
            if status == "success":
                return parse_task_result(record.get("result", ""))
            if status in ("failure", "cancelled"):
                details = list(record.get("error_info") or []) or ["TASK_CANCELLED", task_ref]
                raise _failure(details, url=self.url, username=self.username)
            if deadline is not None and time.monotonic() > deadline:
                raise XapiError(f"task {task_ref} on {self.url} did not finish in time")
            time.sleep(poll_interval)
            poll_interval = min(poll_interval * 1.5, 2.0)

    def destroy_task(self, task_ref: str) -> None:
        try:
            self.call("task.destroy", task_ref)
        except XapiError as error:
            logger.debug("task.destroy %s: %s", task_ref, error)

    def cancel_task(self, task_ref: str) -> None:
        self.call("task.cancel", task_ref)

    # -- HTTP handlers (§9) --

    def _http_connection(self, url: str, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(url)
        if parts.scheme == "https":
            return _PinnedHTTPSConnection(parts.netloc, policy=self.policy, timeout=timeout)
        return http.client.HTTPConnection(parts.netloc, timeout=timeout)

    def _http_open(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        *,
        body: Any = None,
        content_length: int | None = None,
        timeout: float | None = None,
    ) -> http.client.HTTPResponse:
        """Send one request to a handler, following 302 redirects; raise on 401/403/other."""
        if self._session is None:
            raise XapiError(f"not logged in to {self.url}")
        base = self.url
        target = f"{path}?{urlencode({**query, 'session_id': self._session.handle})}"
        for _hop in range(4):
            connection = self._http_connection(base, timeout or self.timeout)
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
            except _TRANSPORT_ERRORS as error:
                connection.close()
                raise _connection_error(error, base) from None
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
            return response
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
            response = self._http_open("GET", path, {**query, "task_id": task_ref}, timeout=timeout)
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
            response = self._http_open(
                "PUT",
                path,
                {**query, "task_id": task_ref},
                body=body,
                content_length=content_length,
                timeout=timeout,
            )
            response.read()
            response.close()
            return self.wait_task(task_ref, timeout=timeout)
        finally:
            self.destroy_task(task_ref)


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


def parse_task_result(result: str) -> Any:
    """``task.result`` is an XML-RPC fragment (``<value>OpaqueRef:…</value>``) or empty."""
    if not result:
        return ""
    document = f"<methodResponse><params><param>{result}</param></params></methodResponse>"
    try:
        return xmlrpc.client.loads(document)[0][0]
    except Exception:
        return result


def find_master(candidates: Iterable[str], make_client: Callable[[str], XapiClient]) -> XapiClient:
    """Probe known pool members and return a client logged in to the current master.

    A member that knows the master answers ``HOST_IS_SLAVE`` naming it; the client follows.
    Members in emergency mode (``HOST_STILL_BOOTING``…) and unreachable hosts are skipped.
    """
    errors = []
    for url in dict.fromkeys(candidates):
        client = make_client(url)
        try:
            client.login()
        except (XapiConnectionError, XapiFailure) as error:
            if isinstance(error, AuthenticationFailed):
                raise
            errors.append(f"{url}: {error}")
            continue
        return client
    raise XapiConnectionError(
        "no pool host answered as master: " + ("; ".join(errors) or "no known hosts")
    )
