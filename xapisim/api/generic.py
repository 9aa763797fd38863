"""Methods every class has: get_all, get_all_records(_where), get_record, get_by_uuid,
get_by_name_label, field getters, setters of writable fields, map and set add/remove."""

from __future__ import annotations

from typing import Any

from .. import schema
from ..errors import XapiError
from ..where import compile_where
from .registry import Call, register

# Classes without a public `get_all` (sessions are private to their owner).
_NO_LISTING = {"session"}


def _install(cls: str) -> None:
    defaults = schema.DEFAULTS[cls]

    if cls not in _NO_LISTING:

        def get_all(call: Call) -> list[str]:
            with call.db.lock:
                return list(call.db.tables[cls])

        def get_all_records(call: Call) -> dict[str, Any]:
            return call.db.all_cached(cls)

        def get_all_records_where(call: Call, expr: str) -> dict[str, Any]:
            try:
                predicate = compile_where(expr)
            except ValueError as error:
                raise XapiError("INTERNAL_ERROR", str(error)) from error
            with call.db.lock:
                return {
                    ref: call.db.cached(ref)
                    for ref, record in call.db.tables[cls].items()
                    if predicate(record)
                }

        register(f"{cls}.get_all", get_all)
        register(f"{cls}.get_all_records", get_all_records)
        register(f"{cls}.get_all_records_where", get_all_records_where)

    def get_record(call: Call, ref: str) -> Any:
        with call.db.lock:
            call.db.get(cls, ref)
            return call.db.cached(ref)

    def get_by_uuid(call: Call, uuid: str) -> str:
        with call.db.lock:
            return call.db.ref_by_uuid(cls, uuid)

    register(f"{cls}.get_record", get_record)
    register(f"{cls}.get_by_uuid", get_by_uuid)

    if "name_label" in defaults:

        def get_by_name_label(call: Call, label: str) -> list[str]:
            with call.db.lock:
                return [ref for ref, r in call.db.tables[cls].items() if r["name_label"] == label]

        register(f"{cls}.get_by_name_label", get_by_name_label)

    for field, default in defaults.items():
        _install_field(cls, field, default, field in schema.WRITABLE.get(cls, ()))


def _install_field(cls: str, field: str, default: Any, writable: bool) -> None:
    def getter(call: Call, ref: str) -> Any:
        with call.db.lock:
            return call.db.get(cls, ref)[field]

    register(f"{cls}.get_{field}", getter)
    if not writable:
        return

    def setter(call: Call, ref: str, value: Any) -> None:
        call.db.update(cls, ref, **{field: schema.coerce(cls, field, value)})

    register(f"{cls}.set_{field}", setter)

    if isinstance(default, dict):

        def add_to(call: Call, ref: str, key: str, value: str) -> None:
            with call.db.lock:
                current = call.db.get(cls, ref)[field]
                if key in current:
                    raise XapiError("MAP_DUPLICATE_KEY", cls, field, ref, key)
                call.db.update(cls, ref, **{field: {**current, key: str(value)}})

        def remove_from(call: Call, ref: str, key: str) -> None:
            with call.db.lock:
                current = call.db.get(cls, ref)[field]
                if key in current:
                    call.db.update(
                        cls, ref, **{field: {k: v for k, v in current.items() if k != key}}
                    )

        register(f"{cls}.add_to_{field}", add_to)
        register(f"{cls}.remove_from_{field}", remove_from)
    elif isinstance(default, list):

        def add(call: Call, ref: str, value: str) -> None:
            with call.db.lock:
                call.db.get(cls, ref)
                call.db.add_to_set(cls, ref, field, str(value))

        def remove(call: Call, ref: str, value: str) -> None:
            with call.db.lock:
                call.db.get(cls, ref)
                call.db.remove_from_set(cls, ref, field, str(value))

        register(f"{cls}.add_{field}", add)
        register(f"{cls}.remove_{field}", remove)


for _cls in schema.DEFAULTS:
    _install(_cls)
