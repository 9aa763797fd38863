"""The network side of the XAPI client: errors, TLS pinning and the XML-RPC transport.

No XenAPI here: pools/xapi.py builds the SDK session on top of this transport; addresses and
fingerprints are normalised by pools/addresses.py.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import socket
import ssl
import xmlrpc.client
from collections.abc import Callable
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

from pools.addresses import normalise_fingerprint, normalise_url

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


class UntrustedCertificate(XapiConnectionError):
    """In CA mode, the server's certificate is not vouched for by a certificate authority."""


class ForbiddenAddress(XapiConnectionError):
    """The address is one xoweb never connects to (link-local, a cloud's metadata service)."""

    def __init__(self, host: str, address: str) -> None:
        shown = host if host == address else f"{host} ({address})"
        super().__init__(
            f"xoweb does not connect to {shown}: link-local and cloud metadata addresses are "
            "never a pool master"
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


def failure_from(details: list, *, url: str = "", username: str = "") -> XapiFailure:
    code = str(details[0]) if details else ""
    if code == "SESSION_AUTHENTICATION_FAILED":
        return AuthenticationFailed(details, username)
    if code == "HOST_IS_SLAVE":
        return HostIsSlave(details, url)
    return XapiFailure(details)


def connection_error(error: BaseException, url: str) -> XapiConnectionError:
    """A message that says what went wrong on the way to ``url``."""
    if isinstance(error, TlsFingerprintMismatch | ForbiddenAddress):
        return error
    if isinstance(error, socket.gaierror):
        host = urlsplit(url).hostname
        return XapiConnectionError(f"cannot resolve the host name {host!r} of {url}")
    if isinstance(error, ConnectionRefusedError):
        return XapiConnectionError(f"connection refused by {url}: is XAPI running there?")
    if isinstance(error, TimeoutError | socket.timeout):
        return XapiConnectionError(f"{url} did not answer in time")
    if isinstance(error, ssl.SSLCertVerificationError):
        return UntrustedCertificate(
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


TRANSPORT_ERRORS = (
    OSError,
    http.client.HTTPException,
    xmlrpc.client.ProtocolError,
    xmlrpc.client.ResponseError,
    xmlrpc.client.Fault,
    ValueError,
    ExpatError,  # a body that is not XML-RPC
)


def certificate_fingerprint(der: bytes) -> str:
    return normalise_fingerprint(hashlib.sha256(der).hexdigest())


def fetch_certificate_fingerprint(url: str, timeout: float = 5.0) -> str:
    """The SHA-256 fingerprint of the certificate ``url`` presents (for trust on first use)."""
    parts = urlsplit(normalise_url(url))
    context = unverified_context()
    try:
        with (
            create_pool_connection((parts.hostname, parts.port or 443), timeout) as raw,
            context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
        ):
            return certificate_fingerprint(tls.getpeercert(binary_form=True))
    except OSError as error:
        raise connection_error(error, url) from None


def unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- connections --------------------------------------------------------------------------------

#: Addresses no pool master has, and that a server in a cloud must never be made to call: the
#: link-local ranges, where the metadata services (169.254.169.254, fd00:ec2::254) hand out the
#: machine's credentials. xoweb refuses them before sending a packet (docs/security.md).
FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128")
)


def is_forbidden_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone (fe80::1%eth0)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in FORBIDDEN_NETWORKS)


def create_pool_connection(
    address: tuple[str, int], timeout: float | None = None, source_address=None, **kwargs
) -> socket.socket:
    """``socket.create_connection`` that never connects to a forbidden address.

    The host name is resolved here and the connection made to the address that was checked,
    so a name that resolves differently the second time (DNS rebinding) cannot slip through.
    """
    host, port = address
    refused: str | None = None
    last_error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        if is_forbidden_address(sockaddr[0]):
            refused = sockaddr[0]
            continue
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as error:
            sock.close()
            last_error = error
    if last_error is not None:
        raise last_error
    if refused is not None:
        raise ForbiddenAddress(host, refused)
    raise OSError(f"no address found for {host}")


class PoolHTTPConnection(http.client.HTTPConnection):
    """Plain HTTP to a pool host, through :func:`create_pool_connection`."""

    def __init__(self, host: str, *, timeout: float) -> None:
        super().__init__(host, timeout=timeout)
        self._create_connection = create_pool_connection


class TlsPolicy:
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
        return ssl.create_default_context() if self.mode == "ca" else unverified_context()

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


class PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, policy: TlsPolicy, timeout: float) -> None:
        super().__init__(host, timeout=timeout, context=policy.context())
        self._create_connection = create_pool_connection
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


class XmlRpcTransport(xmlrpc.client.Transport):
    """An XML-RPC transport with a per-call socket timeout and the client's TLS policy."""

    def __init__(self, *, https: bool, policy: TlsPolicy, timeout: float) -> None:
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
                connection = PinnedHTTPSConnection(chost, policy=self.policy, timeout=self.timeout)
            else:
                connection = PoolHTTPConnection(chost, timeout=self.timeout)
            self._connection = host, connection
        connection.timeout = self.timeout
        if connection.sock is not None:
            connection.sock.settimeout(self.timeout)
        return connection
