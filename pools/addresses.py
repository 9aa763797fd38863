"""Pool addresses and certificate fingerprints as people type them, normalised (pure).

The rules for a valid master address and a valid SHA-256 fingerprint, shared by the model
(``Pool.clean()``), the pool form, the commands and the XAPI client; no network here.
"""

from __future__ import annotations

from urllib.parse import urlsplit


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
