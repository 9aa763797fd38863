"""VM lifecycle a backup tool drives: snapshot (with ignore_vdis), checkpoint, start, shutdown,
destroy. Snapshot records are built like xapi_vm_clone.ml's copy_vm_record (docs/xapi.md §8.3)."""

from __future__ import annotations

from typing import Any

from .. import schema
from ..devices import device_name
from ..errors import XapiError, bad_power_state
from ..wire import EPOCH, now
from .registry import Call, api
from .storage import destroy_vbd, destroy_vdi, new_vdi, snapshot_vdi

RUNNING_OPS = [
    "snapshot",
    "checkpoint",
    "clean_shutdown",
    "hard_shutdown",
    "clean_reboot",
    "hard_reboot",
    "pause",
    "suspend",
]
HALTED_OPS = ["start", "destroy", "snapshot", "export", "clone", "copy"]
SNAPSHOT_OPS = ["destroy", "revert", "export", "clone", "copy"]

# Fields a snapshot does not inherit from its VM.
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
    "current_operations",
}


def allowed_operations(power_state: str) -> list[str]:
    return list(RUNNING_OPS if power_state == "Running" else HALTED_OPS)


def _copy_vm(call: Call, vm: str, new_name: str, ignore_vdis: list[str], mode: str) -> str:
    """Snapshot, checkpoint or clone a VM (`mode`), like xapi_vm_clone.ml.

    Steps: copy the VM record; snapshot (or clone) each non-ignored Disk VDI one by one and give
    it a VBD with `owner`; keep CD VBDs on their ISO; copy VIFs; link a snapshot to its VM."""
    db = call.db
    sim = call.sim
    checkpoint = mode == "checkpoint"
    clone = mode == "clone"
    with db.lock:
        source = db.get("VM", vm)
        if source["is_control_domain"]:
            raise XapiError("OPERATION_NOT_ALLOWED", f"{mode} of a control domain")
        if checkpoint and source["power_state"] != "Running":
            raise bad_power_state(vm, "running", source["power_state"])
        if clone and source["power_state"] not in ("Halted", "Suspended"):
            raise bad_power_state(vm, "halted", source["power_state"])
        ignored = set(ignore_vdis)
        for ref in ignored:
            db.get("VDI", ref)
        when = now()
        record = schema.new_record(
            "VM",
            **{
                name: (value.copy() if isinstance(value, dict | list) else value)
                for name, value in source.items()
                if name not in _NOT_COPIED
            },
        )
        record.update(
            name_label=str(new_name),
            is_a_snapshot=True,
            is_a_template=True,
            power_state="Suspended" if checkpoint else "Halted",
            snapshot_of=vm,
            snapshot_time=when,
            snapshot_info={
                "power-state-at-snapshot": source["power_state"],
                "disk-snapshot-type": "crash_consistent",
            },
            resident_on=schema.NULL,
            domid=-1,
            allowed_operations=list(SNAPSHOT_OPS),
            metrics=schema.NULL,
            guest_metrics=schema.NULL,
        )
        if clone:
            record.update(
                is_a_snapshot=False,
                is_a_template=source["is_a_template"],
                power_state="Halted",
                snapshot_of=schema.NULL,
                snapshot_time=EPOCH,
                snapshot_info={},
                allowed_operations=allowed_operations("Halted"),
            )
        if checkpoint:
            record["suspend_VDI"] = new_vdi(
                sim,
                {
                    "name_label": f"Suspend image for {new_name}",
                    "SR": sim.default_sr(),
                    "virtual_size": max(source["memory_static_max"], 2 * 1024 * 1024),
                    "type": "suspend",
                },
            )
        snap = db.create("VM", record)
        for vbd in source["VBDs"]:
            vbd_record = db.tables["VBD"][vbd]
            vdi = vbd_record["VDI"]
            if vbd_record["type"] == "Disk" and not vbd_record["empty"]:
                if vdi in ignored:
                    continue
                vdi = snapshot_vdi(sim, vdi, clone=clone, when=when)
            other_config = dict(vbd_record["other_config"])
            if vbd_record["type"] == "Disk":
                other_config["owner"] = ""
            copy = schema.new_record(
                "VBD",
                **{
                    name: (value.copy() if isinstance(value, dict | list) else value)
                    for name, value in vbd_record.items()
                    if name
                    not in ("uuid", "VM", "VDI", "currently_attached", "device", "other_config")
                },
            )
            copy.update(VM=snap, VDI=vdi, other_config=other_config, currently_attached=False)
            new_vbd = db.create("VBD", copy)
            db.add_to_set("VM", snap, "VBDs", new_vbd)
            if vdi != schema.NULL:
                db.add_to_set("VDI", vdi, "VBDs", new_vbd)
        for vif in source["VIFs"]:
            vif_record = db.tables["VIF"][vif]
            copy = schema.new_record(
                "VIF",
                **{
                    k: v
                    for k, v in vif_record.items()
                    if k not in ("uuid", "VM", "currently_attached")
                },
            )
            copy.update(VM=snap, other_config=dict(vif_record["other_config"]))
            new_vif = db.create("VIF", copy)
            db.add_to_set("VM", snap, "VIFs", new_vif)
            db.add_to_set("network", copy["network"], "VIFs", new_vif)
        if not clone:
            db.add_to_set("VM", vm, "snapshots", snap)
        return snap


@api("VM.snapshot", asyncable=True)
def snapshot(call: Call, vm: str, new_name: str, ignore_vdis: list[str] | None = None) -> str:
    return _copy_vm(call, vm, new_name, list(ignore_vdis or []), "snapshot")


@api("VM.checkpoint", asyncable=True)
def checkpoint(call: Call, vm: str, new_name: str) -> str:
    return _copy_vm(call, vm, new_name, [], "checkpoint")


@api("VM.clone", asyncable=True)
def clone(call: Call, vm: str, new_name: str) -> str:
    """A halted VM (or a snapshot, as a restore does) copied with writable clones of its disks."""
    return _copy_vm(call, vm, new_name, [], "clone")


# Fields a client may not set through VM.create.
_NOT_CREATABLE = _NOT_COPIED | {
    "power_state",
    "resident_on",
    "domid",
    "is_a_snapshot",
    "snapshot_of",
    "snapshot_time",
    "is_control_domain",
    "allowed_operations",
}


@api("VM.create", asyncable=True)
def create(call: Call, record: dict[str, Any]) -> str:
    """A Halted VM from a record (as a restore builds one); unknown fields are ignored."""
    fields = schema.create_fields("VM", record, _NOT_CREATABLE)
    return call.db.create(
        "VM", schema.new_record("VM", allowed_operations=allowed_operations("Halted"), **fields)
    )


def set_running(call: Call, vm: str, running: bool, host: str | None = None) -> None:
    db = call.db
    with db.lock:
        record = db.get("VM", vm)
        if running:
            host = host or call.sim.master_ref
            db.update(
                "VM",
                vm,
                power_state="Running",
                resident_on=host,
                domid=_next_domid(call),
                allowed_operations=allowed_operations("Running"),
            )
            db.add_to_set("host", host, "resident_VMs", vm)
        else:
            db.remove_from_set("host", record["resident_on"], "resident_VMs", vm)
            db.update(
                "VM",
                vm,
                power_state="Halted",
                resident_on=schema.NULL,
                domid=-1,
                allowed_operations=allowed_operations("Halted"),
            )
        for vbd in record["VBDs"]:
            vbd_record = db.tables["VBD"][vbd]
            device = device_name(vbd_record["userdevice"]) if running else vbd_record["device"]
            db.update(
                "VBD", vbd, currently_attached=running and not vbd_record["empty"], device=device
            )
        for vif in record["VIFs"]:
            db.update("VIF", vif, currently_attached=running)


def _next_domid(call: Call) -> int:
    return 1 + max((r["domid"] for r in call.db.tables["VM"].values()), default=0)


@api("VM.start", asyncable=True)
def start(call: Call, vm: str, start_paused: bool = False, force: bool = False) -> None:
    with call.db.lock:
        record = call.db.get("VM", vm)
        if record["is_a_template"]:
            raise XapiError("VM_IS_TEMPLATE", vm, "start")
        if record["power_state"] != "Halted":
            raise bad_power_state(vm, "halted", record["power_state"])
        set_running(call, vm, True)


@api("VM.start_on", asyncable=True)
def start_on(
    call: Call, vm: str, host: str, start_paused: bool = False, force: bool = False
) -> None:
    with call.db.lock:
        call.db.get("host", host)
        record = call.db.get("VM", vm)
        if record["power_state"] != "Halted":
            raise bad_power_state(vm, "halted", record["power_state"])
        set_running(call, vm, True, host)


@api("VM.clean_shutdown", asyncable=True)
def clean_shutdown(call: Call, vm: str) -> None:
    with call.db.lock:
        state = call.db.get("VM", vm)["power_state"]
        if state != "Running":
            raise bad_power_state(vm, "running", state)
        set_running(call, vm, False)


@api("VM.hard_shutdown", asyncable=True)
def hard_shutdown(call: Call, vm: str) -> None:
    with call.db.lock:
        state = call.db.get("VM", vm)["power_state"]
        if state == "Halted":
            raise bad_power_state(vm, "running", state)
        set_running(call, vm, False)


@api("VM.destroy", asyncable=True)
def destroy(call: Call, vm: str) -> None:
    """Remove the VM, its VBDs and VIFs; its disks stay (a snapshot's too)."""
    db = call.db
    with db.lock:
        record = db.get("VM", vm)
        if record["is_control_domain"]:
            raise XapiError("OPERATION_NOT_ALLOWED", "Cannot destroy a control domain")
        if record["power_state"] not in ("Halted", "Suspended"):
            raise bad_power_state(vm, "halted", record["power_state"])
        for vbd in list(record["VBDs"]):
            destroy_vbd(call.sim, vbd)
        for vif in list(record["VIFs"]):
            db.remove_from_set("network", db.tables["VIF"][vif]["network"], "VIFs", vif)
            db.delete("VIF", vif)
        if record["snapshot_of"] != schema.NULL:
            db.remove_from_set("VM", record["snapshot_of"], "snapshots", vm)
        if record["suspend_VDI"] != schema.NULL and db.exists("VDI", record["suspend_VDI"]):
            destroy_vdi(call.sim, record["suspend_VDI"])
        db.delete("VM", vm)


@api("VM.update_allowed_operations", asyncable=True)
def update_allowed_operations(call: Call, vm: str) -> None:
    """Recompute `allowed_operations` from the power state (XO calls it after changing
    `blocked_operations`)."""
    with call.db.lock:
        record = call.db.get("VM", vm)
        ops = SNAPSHOT_OPS if record["is_a_snapshot"] else allowed_operations(record["power_state"])
        blocked = set(record["blocked_operations"])
        call.db.update("VM", vm, allowed_operations=[op for op in ops if op not in blocked])


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
