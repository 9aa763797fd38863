"""The XAPI client: the one module of xoweb that talks to pools, over the official XenAPI SDK.

Everything that talks to a pool goes through :class:`XapiClient`:

* login with a fixed originator, ``HOST_IS_SLAVE`` followed to the master, logout always;
* ``SESSION_INVALID``: the SDK logs in again and retries (counted in ``session_renewals``),
  except for ``event.from``, whose token dies with its session: there it is raised, so that
  the watcher restarts from a full fetch;
* a timeout on every call (the socket timeout is set per call; ``event.from`` gets its own);
* TLS either verified against the system CAs or pinned to a SHA-256 certificate fingerprint
  (trust on first use when none is pinned yet);
* async calls that wait on their task with a progress callback;
* HTTP helpers for the export/import handlers: ``session_id`` and ``task_id``, 302 followed,
  401 reported, close-delimited bodies streamed, the task read after the stream to know whether
  the transfer succeeded (docs/xapi.md §9).

Errors are :class:`XapiError` subclasses with messages a person can act on. The password is
never put in a message or a log line.

The network side (errors, addresses, TLS pinning, the XML-RPC transport) is in
``pools/xapi_net.py`` and the HTTP handlers in ``pools/xapi_http.py``; other code imports
everything from here.
"""

from __future__ import annotations

import logging
import socket
import time
import xmlrpc.client
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import XenAPI

from pools.addresses import normalise_fingerprint, normalise_url, url_for_address
from pools.xapi_http import HttpHandlersMixin, HttpTransfer
from pools.xapi_net import (
    API_VERSION,
    NULL_REF,
    ORIGINATOR,
    TRANSPORT_ERRORS,
    AuthenticationFailed,
    ForbiddenAddress,
    HostIsSlave,
    SessionRenewed,
    TlsFingerprintMismatch,
    TlsPolicy,
    UntrustedCertificate,
    XapiConnectionError,
    XapiError,
    XapiFailure,
    XmlRpcTransport,
    certificate_fingerprint,
    connection_error,
    failure_from,
    fetch_certificate_fingerprint,
)

__all__ = [
    "API_VERSION",
    "NULL_REF",
    "ORIGINATOR",
    "AuthenticationFailed",
    "ForbiddenAddress",
    "HostIsSlave",
    "HttpTransfer",
    "SessionRenewed",
    "TlsFingerprintMismatch",
    "UntrustedCertificate",
    "XapiClient",
    "XapiConnectionError",
    "XapiError",
    "XapiFailure",
    "certificate_fingerprint",
    "fetch_certificate_fingerprint",
    "find_master",
    "normalise_fingerprint",
    "normalise_url",
    "parse_task_result",
    "url_for_address",
]

logger = logging.getLogger(__name__)


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


class XapiClient(HttpHandlersMixin):
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
        self.policy = TlsPolicy(tls_mode, fingerprints or {}, on_new_fingerprint)
        self.session_renewals = 0
        self._session: XenAPI.Session | None = None
        self._transport: XmlRpcTransport | None = None

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
        self._transport = XmlRpcTransport(
            https=parts.scheme == "https", policy=self.policy, timeout=self.timeout
        )
        session = _Session(url + "/", transport=self._transport)
        try:
            session.login_with_password(self.username, self._password, API_VERSION, ORIGINATOR)
        except XenAPI.Failure as failure:
            self._transport.close()
            raise failure_from(failure.details, url=url, username=self.username) from None
        except TRANSPORT_ERRORS as error:
            self._transport.close()
            raise connection_error(error, url) from None
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
            raise failure_from(failure.details, url=self.url, username=self.username) from None
        except xmlrpc.client.Fault as fault:
            if "valid session" in str(fault.faultString):
                raise SessionRenewed(f"{self.url} keeps refusing new sessions") from None
            raise connection_error(fault, self.url) from None
        except TRANSPORT_ERRORS as error:
            if self._transport is not None:
                self._transport.close()
            raise connection_error(error, self.url) from None
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
                raise failure_from(details, url=self.url, username=self.username)
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
    Members in emergency mode (``HOST_STILL_BOOTING``…) and unreachable hosts are skipped. Bad
    credentials end the search at once; a certificate that is not the pinned one is what is
    reported when no host answered.
    """
    errors = []
    mismatch = None
    for url in dict.fromkeys(candidates):
        client = make_client(url)
        try:
            client.login()
        except (XapiConnectionError, XapiFailure) as error:
            if isinstance(error, AuthenticationFailed):
                raise
            if isinstance(error, TlsFingerprintMismatch) and mismatch is None:
                mismatch = error
            errors.append(f"{url}: {error}")
            continue
        return client
    if mismatch is not None:
        raise mismatch
    raise XapiConnectionError(
        "no pool host answered as master: " + ("; ".join(errors) or "no known hosts")
    )
