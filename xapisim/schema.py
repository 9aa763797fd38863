"""Records of the XAPI classes the simulator serves (docs/xapi.md §8): new records with the
datamodel's defaults (datamodel.py), lenient coercion of client values, and the constructor
records' rules (docs/xapi.md §8.9).

Records are plain dicts of wire-typed values: str (also enums, refs, uuids), int (64-bit, goes
out untyped like a string), float, bool, DateTime, list (sets), dict (maps). A field's default
also gives its type, which setters use to coerce lenient input (ints sent as strings,
docs/xapi.md §2.2).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from .datamodel import DEFAULTS, NULL, REQUIRED, WRITABLE
from .errors import XapiError

# Canonical XAPI class names, keyed by the lower-case name events and lookups use.
CLASSES = {
    name.lower(): name
    for name in (
        "pool",
        "host",
        "SR",
        "PBD",
        "VDI",
        "VBD",
        "VM",
        "VIF",
        "network",
        "task",
        "session",
    )
}

# Tables that are not persisted (XAPI's PersistNothing): gone after a toolstack restart.
VOLATILE = frozenset({"task", "session"})
# Tables that produce no events (sessions, docs/xapi.md §7.2).
SILENT = frozenset({"session"})


def new_uuid() -> str:
    """A random (version 4) UUID; formatted by hand because uuid.uuid4() is 3x slower and a
    10,000-VM pool needs 130,000 of them at start-up."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:32]}"


def new_ref() -> str:
    return f"OpaqueRef:{new_uuid()}"


_CONTAINERS = {
    cls: tuple(key for key, value in fields.items() if isinstance(value, dict | list))
    for cls, fields in DEFAULTS.items()
}


def new_record(cls: str, **fields: Any) -> dict[str, Any]:
    """A fresh record of `cls` with XAPI's defaults, a new UUID and the given fields."""
    # Shallow copy plus fresh containers: deepcopy is too slow for 10,000-VM pools.
    record = DEFAULTS[cls].copy()
    for key in _CONTAINERS[cls]:
        record[key] = record[key].copy()
    record["uuid"] = new_uuid()
    unknown = set(fields) - set(record)
    if unknown:
        raise KeyError(f"{cls} has no field(s) {sorted(unknown)}")
    record.update(fields)
    return record


def coerce(cls: str, field: str, value: Any) -> Any:
    """Convert a lenient client value to the field's type (ints as strings, ints for floats)."""
    default = DEFAULTS[cls][field]
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, dict):
        return {str(k): str(v) for k, v in dict(value).items()}
    if isinstance(default, list):
        return [str(v) for v in value]
    return value if isinstance(value, str) else str(value)


def create_fields(cls: str, record: dict[str, Any], server_set: Collection[str]) -> dict[str, Any]:
    """The fields a client's `cls.create` record may set: those `cls` has, less `server_set`
    (the ones the server fills in itself), each coerced; anything else is ignored. A field the
    datamodel gives no default must be there: the first one missing fails the way XAPI's
    generated dispatcher does (docs/xapi.md §8.9)."""
    record = dict(record)
    for name in REQUIRED.get(cls, ()):
        if name not in record:
            raise XapiError("INTERNAL_ERROR", f'Server_helpers.Dispatcher_FieldNotFound("{name}")')
    return {
        name: coerce(cls, name, value)
        for name, value in record.items()
        if name in DEFAULTS[cls] and name not in server_set
    }


__all__ = ["DEFAULTS", "NULL", "REQUIRED", "WRITABLE", "coerce", "create_fields", "new_record"]
