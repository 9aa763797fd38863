"""VDI and VBD methods a backup tool calls: create, destroy, snapshot, clone, copy, plug
(docs/xapi.md §8.8, §8.9). The chains and space behind them are sm.py's."""

from __future__ import annotations

from typing import Any

from .. import schema, sm
from ..devices import (
    checked_vbd,
    destroy_vbd,
    device_name,
    link_vbd,
    plug_into_dom0,
    unplug_from_dom0,
)
from ..disks import BLOCK_SIZE
from ..errors import XapiError
from .registry import Call, api

# Fields the server fills in itself, whatever a create record says.
_VDI_SERVER_SET = ("uuid", "VBDs", "snapshots", "location", "managed", "is_a_snapshot")
_VBD_SERVER_SET = ("uuid",)


@api("VDI.create", asyncable=True)
def vdi_create(call: Call, record: dict[str, Any]) -> str:
    fields = schema.create_fields("VDI", record, _VDI_SERVER_SET)
    if fields["type"] == "cbt_metadata":
        raise XapiError("VDI_INCOMPATIBLE_TYPE", "", "cbt_metadata")
    return sm.new_vdi(call.sim, fields)


@api("VDI.snapshot", asyncable=True, defaulted=True)
def vdi_snapshot(call: Call, vdi: str, driver_params: dict[str, str] | None = None) -> str:
    return sm.snapshot_vdi(call.sim, vdi)


@api("VDI.clone", asyncable=True, defaulted=True)
def vdi_clone(call: Call, vdi: str, driver_params: dict[str, str] | None = None) -> str:
    return sm.snapshot_vdi(call.sim, vdi, clone=True)


@api("VDI.destroy", asyncable=True)
def vdi_destroy(call: Call, vdi: str) -> None:
    sm.destroy_vdi(call.sim, vdi)


@api("VDI.resize", asyncable=True)
def vdi_resize(call: Call, vdi: str, size: Any) -> None:
    """Grow a disk (FileSR.py resize): its leaf gets the new size, rounded up to 2 MiB as
    vhd-util does; shrinking is the SM's `VDISize` error; the disk must not be attached."""
    db = call.db
    sim = call.sim
    new_size = -(-int(size) // BLOCK_SIZE) * BLOCK_SIZE
    with db.lock:
        record = db.get("VDI", vdi)
        if not record["managed"]:
            raise XapiError("VDI_NOT_MANAGED", vdi)
        if any(db.tables["VBD"][vbd]["currently_attached"] for vbd in record["VBDs"]):
            raise XapiError("VDI_IN_USE", vdi, "resize")
        if new_size < record["virtual_size"]:
            raise XapiError(
                "SR_BACKEND_FAILURE_79", "", "VDI Invalid size [opterr=shrinking not allowed]", ""
            )
        with sm.space_errors():
            sim.store.resize(record["uuid"], new_size)
        db.update("VDI", vdi, virtual_size=new_size)
        sm.after_write(sim, vdi)


@api("VDI.copy", asyncable=True, defaulted=True)
def vdi_copy(
    call: Call,
    vdi: str,
    sr: str = schema.NULL,
    base_vdi: str = schema.NULL,
    into_vdi: str = schema.NULL,
) -> str:
    """Copy a VDI into a new one on `sr`, or into `into_vdi`; with `base_vdi`, only the blocks
    that differ from it (xapi_vdi.ml copy, docs/xapi.md §8.8).

    Steps: the source must be managed → the destination (created like the source, writable,
    `sm_config` empty) must be writable and large enough → source, base and destination are
    plugged into dom0 → blocks copied → unplugged; a destination made here goes on failure."""
    sim = call.sim
    db = call.db
    with db.lock:
        source = db.get("VDI", vdi)
        if not source["managed"]:
            raise XapiError("VDI_NOT_MANAGED", vdi)
        created = None
        if db.exists("VDI", into_vdi):
            target = into_vdi
        else:
            fields = {name: _copy(source[name]) for name in sm.COPIED if name != "on_boot"}
            fields.update(SR=sr, virtual_size=source["virtual_size"], read_only=False)
            fields.update(allow_caching=source["allow_caching"], on_boot=source["on_boot"])
            created = target = sm.new_vdi(sim, fields)
    try:
        destination = db.get("VDI", target)
        if destination["read_only"]:
            raise XapiError("VDI_READONLY", target)
        if destination["virtual_size"] < source["virtual_size"]:
            raise XapiError("VDI_TOO_SMALL", target, source["virtual_size"])
        base = base_vdi if db.exists("VDI", base_vdi) else None
        _copy_blocks(call, source["uuid"], destination["uuid"], vdi, target, base)
    except Exception:
        if created is not None and db.exists("VDI", created):
            sm.forget_vdi(sim, created)
        raise
    return target


def _copy_blocks(
    call: Call, source_uuid: str, target_uuid: str, vdi: str, target: str, base: str | None
) -> None:
    sim = call.sim
    dom0 = sim.db.get("host", call.host)["control_domain"]
    plugged = [plug_into_dom0(sim.db, dom0, vdi, "RO")]
    try:
        if base is not None:
            plugged.append(plug_into_dom0(sim.db, dom0, base, "RO"))
        plugged.append(plug_into_dom0(sim.db, dom0, target, "RW"))
        store = sim.store
        if base is None:
            blocks = store.full_blocks(source_uuid)
        else:
            blocks = store.delta_blocks(source_uuid, sim.db.get("VDI", base)["uuid"])
        size = store.size(source_uuid)
        with sm.space_errors():
            for index in blocks:
                data = store.read_block(source_uuid, index)
                store.write(target_uuid, index * BLOCK_SIZE, data[: size - index * BLOCK_SIZE])
    finally:
        for vbd in plugged:
            unplug_from_dom0(sim.db, vbd)
        sm.after_write(sim, target)


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, dict | list) else value


@api("VBD.create", asyncable=True)
def vbd_create(call: Call, record: dict[str, Any]) -> str:
    """XAPI's constructor checks (docs/xapi.md §8.9), then the row and its links."""
    fields = schema.create_fields("VBD", record, _VBD_SERVER_SET)
    with call.db.lock:
        return link_vbd(call.db, checked_vbd(call.db, fields))


@api("VBD.destroy", asyncable=True)
def vbd_destroy(call: Call, vbd: str) -> None:
    db = call.db
    with db.lock:
        record = db.get("VBD", vbd)
        if record["currently_attached"]:
            vm_uuid = db.get("VM", record["VM"])["uuid"]
            raise XapiError(
                "OPERATION_NOT_ALLOWED", f"VBD '{record['uuid']}' still attached to '{vm_uuid}'"
            )
        destroy_vbd(db, vbd)


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


__all__ = ["plug_into_dom0", "unplug_from_dom0"]
