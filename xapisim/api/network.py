"""VIF.create / VIF.destroy: a restored VM gets its network interfaces back."""

from __future__ import annotations

from typing import Any

from .. import schema
from .registry import Call, api


@api("VIF.create", asyncable=True)
def vif_create(call: Call, record: dict[str, Any]) -> str:
    db = call.db
    fields = schema.create_fields("VIF", record, ("uuid", "currently_attached"))
    with db.lock:
        vm = fields.get("VM", schema.NULL)
        db.get("VM", vm)
        db.get("network", fields.get("network", schema.NULL))
        ref = db.create("VIF", schema.new_record("VIF", **fields))
        db.add_to_set("VM", vm, "VIFs", ref)
        db.add_to_set("network", fields["network"], "VIFs", ref)
        return ref


@api("VIF.destroy", asyncable=True)
def vif_destroy(call: Call, vif: str) -> None:
    db = call.db
    with db.lock:
        record = db.get("VIF", vif)
        db.remove_from_set("VM", record["VM"], "VIFs", vif)
        db.remove_from_set("network", record["network"], "VIFs", vif)
        db.delete("VIF", vif)
