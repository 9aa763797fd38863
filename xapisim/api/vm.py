"""VM lifecycle a backup tool drives: snapshot (with ignore_vdis), checkpoint, clone, create,
start, shutdown, destroy. Every operation passes vm_lifecycle's checks and holds its lock; the
new VMs are built like xapi_vm_clone.ml builds them (docs/xapi.md §8.8, §8.10, §8.11)."""

from __future__ import annotations

from typing import Any

from .. import schema, sm
from ..devices import device_name
from ..errors import XapiError
from ..macs import MAC_SEED, generated_mac
from ..wire import EPOCH, now
from .registry import Call, api
from .vm_lifecycle import operation_error, vm_operation

# Fields a snapshot, checkpoint or clone does not take from its VM.
_NOT_COPIED = {
    "uuid",
    "snapshots",
    "VBDs",
    "VIFs",
    "children",
    "consoles",
    "crash_dumps",
    "VUSBs",
    "VTPMs",
    "VGPUs",
    "attached_PCIs",
    "current_operations",
    "allowed_operations",
    "blocked_operations",
    "suspend_VDI",
}
# Operations listed in `allowed_operations` when the checks let them through.
_LISTED_OPS = (
    "snapshot",
    "checkpoint",
    "clone",
    "copy",
    "export",
    "start",
    "start_on",
    "clean_shutdown",
    "hard_shutdown",
    "clean_reboot",
    "hard_reboot",
    "suspend",
    "pause",
    "destroy",
    "revert",
)


def refresh_allowed_operations(db: Any, vm: str) -> None:
    """`allowed_operations` = the listed operations whose checks pass now."""
    with db.lock:
        record = db.get("VM", vm)
        allowed = [op for op in _LISTED_OPS if operation_error(db, vm, op) is None]
        if allowed != record["allowed_operations"]:
            db.update("VM", vm, allowed_operations=allowed)


def _copy_disks(call: Call, vm: str, ignore: set[str], mode: str, when: Any) -> list[tuple]:
    """Snapshot (or clone) each non-empty Disk VBD's VDI one after the other; CDs keep their
    ISO; VBDs whose VDI is in `ignore` are left out, CDs too (xapi_vm_clone.ml ~448-456). On a
    failure the copies made so far are destroyed and the error goes on."""
    db = call.db
    made: list[str] = []
    out = []
    try:
        for vbd in db.get("VM", vm)["VBDs"]:
            record = db.tables["VBD"][vbd]
            if record["VDI"] in ignore:
                continue
            vdi = record["VDI"]
            if record["type"] != "CD" and not record["empty"]:
                vdi = sm.snapshot_vdi(call.sim, vdi, clone=mode == "clone", when=when)
                made.append(vdi)
            out.append((record, vdi))
    except XapiError:
        for vdi in made:
            sm.forget_vdi(call.sim, vdi)
        raise
    return out


def _new_vm_record(source: dict[str, Any], vm: str, new_name: str, mode: str, when: Any) -> dict:
    """The new VM's record (xapi_vm_clone.ml copy_vm_record)."""
    snapshot = mode in ("snapshot", "checkpoint")
    other_config = {
        k: v
        for k, v in source["other_config"].items()
        if k not in ("default_template", "xensource_internal")
    }
    if not snapshot:
        other_config[MAC_SEED] = schema.new_uuid()
    if source["is_a_template"] and "base_template_name" not in other_config:
        other_config["base_template_name"] = source["name_label"]
    record = schema.new_record(
        "VM", **{k: _copy(v) for k, v in source.items() if k not in _NOT_COPIED}
    )
    state = source["power_state"]
    if mode == "checkpoint" or (mode == "clone" and state == "Suspended"):
        new_state = "Suspended"
    else:
        new_state = "Halted"
    record.update(
        name_label=str(new_name),
        other_config=other_config,
        power_state=new_state,
        is_a_template=snapshot or source["is_a_template"],
        is_default_template=False,
        is_a_snapshot=snapshot,
        snapshot_of=vm if snapshot else schema.NULL,
        snapshot_time=when if snapshot else EPOCH,
        snapshot_info=(
            {"power-state-at-snapshot": state, "disk-snapshot-type": "crash_consistent"}
            if snapshot
            else {}
        ),
        parent=source["parent"] if snapshot else schema.NULL,
        resident_on=schema.NULL,
        scheduled_to_be_resident_on=schema.NULL,
        domid=-1,
        domarch="",
        ha_always_run=False,
        metrics=schema.NULL,
        guest_metrics=schema.NULL,
        protection_policy=schema.NULL,
        snapshot_schedule=schema.NULL,
        appliance=schema.NULL,
        suspend_SR=schema.NULL,
        start_delay=0,
        shutdown_delay=0,
        order=0,
        version=0,
        requires_reboot=False,
    )
    return record


def _copy_vm(call: Call, vm: str, new_name: str, ignore_vdis: list[str], mode: str) -> str:
    """Snapshot, checkpoint or clone a VM (`mode`), like xapi_vm_clone.ml `clone`.

    Steps: copy the disks → build the VM record → copy the VBDs onto the new VDIs (with `owner`
    on Disk VBDs; `currently_attached` and `device` copied, then cleared for a Halted result)
    → copy the VIFs (a clone gets new MACs) → the suspend VDI (checkpoint: a new memory image or
    a snapshot of the VM's; clone: its own clone) → link snapshot and parent."""
    db = call.db
    sim = call.sim
    when = now()
    with db.lock:
        source = db.get("VM", vm)
        snapshot = mode in ("snapshot", "checkpoint")
        disks = _copy_disks(call, vm, set(ignore_vdis) if snapshot else set(), mode, when)
        record = _new_vm_record(source, vm, new_name, mode, when)
        new = db.create("VM", record)
        halted = record["power_state"] == "Halted"
        for vbd_record, vdi in disks:
            copy = schema.new_record(
                "VBD",
                **{
                    k: _copy(v)
                    for k, v in vbd_record.items()
                    if k not in ("uuid", "VM", "VDI", "current_operations", "allowed_operations")
                },
            )
            copy.update(VM=new, VDI=vdi)
            if copy["type"] == "Disk":
                copy["other_config"].setdefault("owner", "")
            if halted:
                copy["currently_attached"] = False
            vbd = db.create("VBD", copy)
            db.add_to_set("VM", new, "VBDs", vbd)
            if vdi != schema.NULL:
                db.add_to_set("VDI", vdi, "VBDs", vbd)
        for vif in source["VIFs"]:
            vif_record = db.tables["VIF"][vif]
            copy = schema.new_record(
                "VIF",
                **{
                    k: _copy(v)
                    for k, v in vif_record.items()
                    if k not in ("uuid", "VM", "current_operations", "allowed_operations")
                },
            )
            copy.update(VM=new, currently_attached=vif_record["currently_attached"] and not halted)
            if not snapshot:  # XAPI copies the VIF with an empty MAC: derived from the new seed
                seed = db.tables["VM"][new]["other_config"][MAC_SEED]
                copy.update(MAC=generated_mac(int(copy["device"]), seed), MAC_autogenerated=True)
            new_vif = db.create("VIF", copy)
            db.add_to_set("VM", new, "VIFs", new_vif)
            db.add_to_set("network", copy["network"], "VIFs", new_vif)
        db.update("VM", new, suspend_VDI=_suspend_image(call, source, new_name, mode))
        if snapshot:
            db.add_to_set("VM", vm, "snapshots", new)
            if source["parent"] != schema.NULL:
                db.remove_from_set("VM", source["parent"], "children", vm)
                db.add_to_set("VM", source["parent"], "children", new)
            db.update("VM", vm, parent=new)
            db.add_to_set("VM", new, "children", vm)
        refresh_allowed_operations(db, new)
        sim.store_dirty = True
        return new


def _suspend_image(call: Call, source: dict[str, Any], new_name: str, mode: str) -> str:
    """The new VM's suspend VDI: none for a snapshot; for a checkpoint a memory image of a
    running VM (empty: the simulator keeps no memory) or a snapshot of a suspended VM's; for
    a clone its own clone of the source's."""
    original = source["suspend_VDI"]
    if mode == "snapshot":
        return schema.NULL
    if original != schema.NULL and call.db.exists("VDI", original):
        return sm.snapshot_vdi(call.sim, original, clone=mode == "clone")
    if mode == "checkpoint":
        pool = call.db.tables["pool"][call.sim.pool_ref]
        sr = pool["suspend_image_SR"] if pool["suspend_image_SR"] != schema.NULL else None
        return sm.new_vdi(
            call.sim,
            {
                "name_label": f"Suspend image for {new_name}",
                "SR": sr or call.sim.default_sr(),
                "virtual_size": max(source["memory_static_max"], 2 * 1024 * 1024),
                "type": "suspend",
            },
        )
    return schema.NULL


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, dict | list) else value


@api(
    "VM.snapshot",
    asyncable=True,
    defaulted=True,
    since={"ignore_vdis": (21, 4, 0)},
)
def snapshot(call: Call, vm: str, new_name: str, ignore_vdis: list[str] | None = None) -> str:
    """Crash-consistent snapshot; `ignore_vdis` refs are not validated (docs/xapi.md §8.8)."""
    with vm_operation(call, vm, "snapshot"):
        return _copy_vm(call, vm, new_name, [str(v) for v in ignore_vdis or []], "snapshot")


@api("VM.checkpoint", asyncable=True)
def checkpoint(call: Call, vm: str, new_name: str) -> str:
    with vm_operation(call, vm, "checkpoint"):
        return _copy_vm(call, vm, new_name, [], "checkpoint")


@api("VM.clone", asyncable=True)
def clone(call: Call, vm: str, new_name: str) -> str:
    """A halted VM (or a snapshot, as a restore does) copied with writable clones of its disks;
    a clone of a checkpoint is Suspended with its own suspend VDI."""
    with vm_operation(call, vm, "clone"):
        return _copy_vm(call, vm, new_name, [], "clone")


# Fields a client may not set through VM.create.
_NOT_CREATABLE = (
    _NOT_COPIED
    | {
        "resident_on",
        "domid",
        "is_a_snapshot",
        "snapshot_of",
        "snapshot_time",
        "is_control_domain",
        "parent",
    }
) - {"blocked_operations", "suspend_VDI"}


@api("VM.create", asyncable=True)
def create(call: Call, record: dict[str, Any]) -> str:
    """A VM from a record (as a restore builds one): the datamodel's required fields must be
    there (docs/xapi.md §8.9); Halted unless the record says Suspended with a suspend VDI."""
    fields = schema.create_fields("VM", record, _NOT_CREATABLE)
    # XAPI gives every created VM a seed for its VIFs' MACs unless the record brings one.
    fields["other_config"] = {MAC_SEED: schema.new_uuid(), **fields["other_config"]}
    if (
        fields.get("power_state", "Halted") != "Suspended"
        or fields.get("suspend_VDI", schema.NULL) == schema.NULL
    ):
        fields["power_state"] = "Halted"
    with call.db.lock:
        ref = call.db.create("VM", schema.new_record("VM", **fields))
        refresh_allowed_operations(call.db, ref)
        return ref


def set_running(call: Call, vm: str, running: bool, host: str | None = None) -> None:
    db = call.db
    with db.lock:
        record = db.get("VM", vm)
        if running:
            host = host or call.sim.master_ref
            db.update("VM", vm, power_state="Running", resident_on=host, domid=_next_domid(call))
            db.add_to_set("host", host, "resident_VMs", vm)
        else:
            db.remove_from_set("host", record["resident_on"], "resident_VMs", vm)
            db.update("VM", vm, power_state="Halted", resident_on=schema.NULL, domid=-1)
        for vbd in record["VBDs"]:
            vbd_record = db.tables["VBD"][vbd]
            device = device_name(vbd_record["userdevice"]) if running else vbd_record["device"]
            db.update(
                "VBD", vbd, currently_attached=running and not vbd_record["empty"], device=device
            )
        for vif in record["VIFs"]:
            db.update("VIF", vif, currently_attached=running)
        refresh_allowed_operations(db, vm)


def _next_domid(call: Call) -> int:
    return 1 + max((r["domid"] for r in call.db.tables["VM"].values()), default=0)


@api("VM.start", asyncable=True)
def start(call: Call, vm: str, start_paused: bool, force: bool) -> None:
    with vm_operation(call, vm, "start"):
        set_running(call, vm, True)


@api("VM.start_on", asyncable=True)
def start_on(call: Call, vm: str, host: str, start_paused: bool, force: bool) -> None:
    with vm_operation(call, vm, "start_on"):
        call.db.get("host", host)
        set_running(call, vm, True, host)


@api("VM.clean_shutdown", asyncable=True)
def clean_shutdown(call: Call, vm: str) -> None:
    with vm_operation(call, vm, "clean_shutdown"):
        set_running(call, vm, False)


@api("VM.hard_shutdown", asyncable=True)
def hard_shutdown(call: Call, vm: str) -> None:
    with vm_operation(call, vm, "hard_shutdown"):
        set_running(call, vm, False)


@api("VM.destroy", asyncable=True)
def destroy(call: Call, vm: str) -> None:
    with vm_operation(call, vm, "destroy"):
        forget_vm(call, vm)


def forget_vm(call: Call, vm: str) -> None:
    """Remove the VM, its VBDs (attached or not) and VIFs; never a VDI, not even its suspend
    VDI (xapi_vm_helpers.ml destroy, docs/xapi.md §8.8)."""
    db = call.db
    with db.lock:
        record = db.get("VM", vm)
        if record["other_config"].get("default_template") == "true":
            raise XapiError("VM_CANNOT_DELETE_DEFAULT_TEMPLATE")
        for vbd in list(record["VBDs"]):
            if db.exists("VBD", vbd):
                vbd_record = db.tables["VBD"][vbd]
                db.remove_from_set("VM", vm, "VBDs", vbd)
                if vbd_record["VDI"] != schema.NULL:
                    db.remove_from_set("VDI", vbd_record["VDI"], "VBDs", vbd)
                db.delete("VBD", vbd)
        for vif in list(record["VIFs"]):
            db.remove_from_set("network", db.tables["VIF"][vif]["network"], "VIFs", vif)
            db.delete("VIF", vif)
        if record["snapshot_of"] != schema.NULL:
            db.remove_from_set("VM", record["snapshot_of"], "snapshots", vm)
        for other in (record["parent"], *record["children"]):
            if db.exists("VM", other):
                db.remove_from_set("VM", other, "children", vm)
                if db.tables["VM"][other]["parent"] == vm:
                    db.update("VM", other, parent=schema.NULL)
        if record["resident_on"] != schema.NULL:
            db.remove_from_set("host", record["resident_on"], "resident_VMs", vm)
        db.delete("VM", vm)


@api("VM.update_allowed_operations", asyncable=True)
def update_allowed_operations(call: Call, vm: str) -> None:
    """Recompute `allowed_operations` (XO calls it after changing `blocked_operations`)."""
    refresh_allowed_operations(call.db, vm)


@api("VM.set_memory_limits", asyncable=True)
def set_memory_limits(
    call: Call, vm: str, static_min: Any, static_max: Any, dynamic_min: Any, dynamic_max: Any
) -> None:
    """Set the four memory fields at once, checking XAPI's ordering constraint."""
    values = [int(static_min), int(dynamic_min), int(dynamic_max), int(static_max)]
    if values != sorted(values):
        raise XapiError(
            "MEMORY_CONSTRAINT_VIOLATION",
            "Memory limits must satisfy: static_min ≤ dynamic_min ≤ dynamic_max ≤ static_max",
        )
    call.db.update(
        "VM",
        vm,
        memory_static_min=values[0],
        memory_dynamic_min=values[1],
        memory_dynamic_max=values[2],
        memory_static_max=values[3],
    )
