"""VDI and VBD operations a backup tool calls: create, destroy, snapshot, clone, plug."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import schema
from ..devices import device_name
from ..errors import XapiError
from ..wire import now
from .registry import Call, api

if TYPE_CHECKING:
    from ..pool import Simulator

# VDI fields a snapshot or clone inherits from its source.
_INHERITED = (
    "name_label",
    "name_description",
    "SR",
    "virtual_size",
    "type",
    "sharable",
    "other_config",
    "sm_config",
    "xenstore_data",
    "on_boot",
    "tags",
)


def new_vdi(sim: Simulator, fields: dict[str, Any]) -> str:
    """Create a VDI record and its empty disk; link it into its SR."""
    db = sim.db
    with db.lock:
        record = schema.new_record("VDI", **fields)
        record["location"] = record["uuid"]
        record["sm_config"] = {"vdi_type": "vhd", **record["sm_config"]}
        db.get("SR", record["SR"])
        sim.store.create(record["uuid"], record["virtual_size"])
        ref = db.create("VDI", record)
        db.add_to_set("SR", record["SR"], "VDIs", ref)
        return ref


def snapshot_vdi(sim: Simulator, vdi: str, *, clone: bool = False, when: Any = None) -> str:
    """Copy-on-write copy of a VDI: a read-only snapshot, or a writable clone."""
    db = sim.db
    with db.lock:
        source = db.get("VDI", vdi)
        fields = {
            name: (value.copy() if isinstance(value, dict | list) else value)
            for name, value in source.items()
            if name in _INHERITED
        }
        record = schema.new_record("VDI", **fields)
        record["location"] = record["uuid"]
        if not clone:
            record.update(
                is_a_snapshot=True, snapshot_of=vdi, snapshot_time=when or now(), read_only=True
            )
        sim.store.snapshot(source["uuid"], record["uuid"])
        record["physical_utilisation"] = 0
        ref = db.create("VDI", record)
        db.add_to_set("SR", record["SR"], "VDIs", ref)
        if not clone:
            db.add_to_set("VDI", vdi, "snapshots", ref)
        return ref


def destroy_vdi(sim: Simulator, vdi: str) -> None:
    db = sim.db
    with db.lock:
        record = db.get("VDI", vdi)
        for vbd in record["VBDs"]:
            if db.tables["VBD"].get(vbd, {}).get("currently_attached"):
                raise XapiError("VDI_IN_USE", vdi, "destroy")
        for vbd in list(record["VBDs"]):
            if db.exists("VBD", vbd):
                destroy_vbd(sim, vbd)
        if record["snapshot_of"] != schema.NULL:
            db.remove_from_set("VDI", record["snapshot_of"], "snapshots", vdi)
        db.remove_from_set("SR", record["SR"], "VDIs", vdi)
        db.delete("VDI", vdi)
        sim.store.destroy(record["uuid"])


def destroy_vbd(sim: Simulator, vbd: str) -> None:
    db = sim.db
    with db.lock:
        record = db.get("VBD", vbd)
        db.remove_from_set("VM", record["VM"], "VBDs", vbd)
        if record["VDI"] != schema.NULL:
            db.remove_from_set("VDI", record["VDI"], "VBDs", vbd)
        db.delete("VBD", vbd)


@api("VDI.create", asyncable=True)
def vdi_create(call: Call, record: dict[str, Any]) -> str:
    fields = schema.create_fields("VDI", record, ("uuid", "VBDs", "snapshots"))
    if "SR" not in fields:
        raise XapiError("FIELD_TYPE_ERROR", "SR")
    if fields.get("virtual_size", 0) <= 0:
        raise XapiError("FIELD_TYPE_ERROR", "virtual_size")
    return new_vdi(call.sim, fields)


@api("VDI.snapshot", asyncable=True)
def vdi_snapshot(call: Call, vdi: str, driver_params: dict[str, str] | None = None) -> str:
    return snapshot_vdi(call.sim, vdi)


@api("VDI.clone", asyncable=True)
def vdi_clone(call: Call, vdi: str, driver_params: dict[str, str] | None = None) -> str:
    return snapshot_vdi(call.sim, vdi, clone=True)


@api("VDI.destroy", asyncable=True)
def vdi_destroy(call: Call, vdi: str) -> None:
    destroy_vdi(call.sim, vdi)


def _next_userdevice(call: Call, vm: str) -> str:
    used = {call.db.tables["VBD"][vbd]["userdevice"] for vbd in call.db.get("VM", vm)["VBDs"]}
    return str(next(n for n in range(64) if str(n) not in used))


@api("VBD.create", asyncable=True)
def vbd_create(call: Call, record: dict[str, Any]) -> str:
    db = call.db
    fields = schema.create_fields("VBD", record, ("uuid", "currently_attached", "device"))
    with db.lock:
        vm = fields.get("VM", schema.NULL)
        db.get("VM", vm)
        vdi = fields.get("VDI", schema.NULL)
        if vdi != schema.NULL:
            db.get("VDI", vdi)
        elif not fields.get("empty"):
            raise handle_null_vdi()
        if fields.get("userdevice", "autodetect") == "autodetect":
            fields["userdevice"] = _next_userdevice(call, vm)
        ref = db.create("VBD", schema.new_record("VBD", **fields))
        db.add_to_set("VM", vm, "VBDs", ref)
        if vdi != schema.NULL:
            db.add_to_set("VDI", vdi, "VBDs", ref)
        return ref


def handle_null_vdi() -> XapiError:
    return XapiError("HANDLE_INVALID", "VDI", schema.NULL)


@api("VBD.destroy", asyncable=True)
def vbd_destroy(call: Call, vbd: str) -> None:
    with call.db.lock:
        if call.db.get("VBD", vbd)["currently_attached"]:
            raise XapiError("OPERATION_NOT_ALLOWED", f"VBD {vbd} is currently attached")
        destroy_vbd(call.sim, vbd)


@api("VBD.plug", asyncable=True)
def vbd_plug(call: Call, vbd: str) -> None:
    with call.db.lock:
        record = call.db.get("VBD", vbd)
        state = call.db.get("VM", record["VM"])["power_state"]
        if state != "Running":
            raise XapiError("VM_BAD_POWER_STATE", record["VM"], "running", state.lower())
        if record["currently_attached"]:
            raise XapiError("DEVICE_ALREADY_ATTACHED", vbd)
        call.db.update(
            "VBD", vbd, currently_attached=True, device=device_name(record["userdevice"])
        )


@api("VBD.unplug", asyncable=True)
def vbd_unplug(call: Call, vbd: str) -> None:
    with call.db.lock:
        if not call.db.get("VBD", vbd)["currently_attached"]:
            raise XapiError("DEVICE_ALREADY_DETACHED", vbd)
        call.db.update("VBD", vbd, currently_attached=False)


@api("VDI.resize", asyncable=True)
def vdi_resize(call: Call, vdi: str, size: Any) -> None:
    """Grow a disk (file and LVM SRs cannot shrink one: ``VDI_TOO_SMALL [vdi, size]``)."""
    db = call.db
    new_size = int(size)
    with db.lock:
        record = db.get("VDI", vdi)
        if new_size < record["virtual_size"]:
            raise XapiError("VDI_TOO_SMALL", vdi, str(record["virtual_size"]))
        call.sim.store.leaf(record["uuid"]).size = new_size
        db.update("VDI", vdi, virtual_size=new_size)
