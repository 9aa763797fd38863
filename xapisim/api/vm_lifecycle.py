"""The checks every VM operation passes, in XAPI's order, and the operation lock
(`xapi_vm_lifecycle.ml` `check_operation_error`, docs/xapi.md §8.10).

Steps of `vm_operation(call, vm, op)`: check → on a conflicting operation in progress, wait for it
to end (XAPI retries inside the call; here up to `sim.set_lock_wait` seconds, two hours by
default) and check again → record `{task: op}` in the VM's `current_operations` → run the body
(after the `Async.` delay of `sim.set_async_delay`, holding the lock) → remove the entry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import schema, tasks
from ..errors import XapiError
from .registry import Call

HALTED, PAUSED, SUSPENDED, RUNNING = "Halted", "Paused", "Suspended", "Running"
ALL_STATES = [HALTED, PAUSED, SUSPENDED, RUNNING]

# Operations a snapshot may undergo, and a (non-default) template.
SNAPSHOT_OPS = {"revert", "clone", "copy", "export", "destroy", "hard_shutdown", "metadata_export"}
TEMPLATE_OPS = {
    "changing_dynamic_range",
    "changing_static_range",
    "changing_memory_limits",
    "changing_shadow_memory",
    "changing_VCPUs",
    "changing_NVRAM",
    "clone",
    "copy",
    "export",
    "metadata_export",
    "provision",
}
# Sets of operations that may run together on one VM (`is_allowed_concurrently`).
_TOGETHER = ({"snapshot", "checkpoint"}, {"clone", "copy", "export"})
# Control-domain operations XAPI allows (all others: OPERATION_NOT_ALLOWED).
_DOM0_OPS = {"start", "start_on", "destroy", "changing_memory_limits", "changing_VCPUs"}


def allowed_power_states(record: dict[str, Any], op: str) -> list[str]:
    """Power states in which `op` may run, in XAPI's order (`allowed_power_states`)."""
    if op in ("start", "start_on", "provision", "make_into_template"):
        return [HALTED]
    if op in ("clean_shutdown", "clean_reboot", "suspend", "pause"):
        return [RUNNING]
    if op in ("clone", "copy"):
        return [HALTED, SUSPENDED] if record["is_a_snapshot"] else [HALTED]
    if op in ("destroy", "export"):
        return [HALTED, SUSPENDED]
    if op == "hard_reboot":
        return [PAUSED, RUNNING]
    if op in ("checkpoint", "hard_shutdown", "shutdown"):
        return [PAUSED, SUSPENDED, RUNNING]
    if op in ("resume", "resume_on"):
        return [SUSPENDED]
    if op == "unpause":
        return [PAUSED]
    return list(ALL_STATES)  # snapshot, revert, update_allowed_operations, …


def _concurrent_ok(op: str, current: dict[str, str]) -> bool:
    ops = set(current.values())
    if op == "hard_shutdown":
        return "hard_shutdown" not in ops
    return any(op in group and ops <= group for group in _TOGETHER)


def operation_error(db: Any, vm: str, op: str) -> XapiError | None:
    """The first reason XAPI would refuse `op` on `vm` now, or None (docs/xapi.md §8.10)."""
    record = db.get("VM", vm)
    reason = record["blocked_operations"].get(op)
    if reason is not None:
        return XapiError("OPERATION_BLOCKED", vm, reason)
    state = record["power_state"]
    expected = allowed_power_states(record, op)
    if state not in expected:
        return XapiError(
            "VM_BAD_POWER_STATE", vm, ", ".join(s.lower() for s in expected), state.lower()
        )
    current = record["current_operations"]
    if current and not _concurrent_ok(op, current):
        if len(current) == 1:
            (task, running), *_ = current.items()
        else:
            task = "{" + ",".join(current) + "}"
            running = "{" + ",".join(current.values()) + "}"
        return XapiError("OTHER_OPERATION_IN_PROGRESS", "VM", vm, running, task)
    if record["is_a_template"] and not record["is_a_snapshot"]:
        default = record["is_default_template"] or record["other_config"].get(
            "default_template"
        ) in ("true", "1")
        if op not in TEMPLATE_OPS and not (op == "destroy" and not default):
            return XapiError("VM_IS_TEMPLATE", vm, op)
    if record["is_a_snapshot"] and op not in SNAPSHOT_OPS:
        return XapiError("VM_IS_SNAPSHOT", vm, op)
    if record["is_control_domain"]:
        if op == "destroy" and record["domid"] == 0:
            return XapiError("OPERATION_NOT_ALLOWED", "This operation is not allowed on dom0")
        if op not in _DOM0_OPS:
            return XapiError(
                "OPERATION_NOT_ALLOWED", "This operation is not allowed on a control domain"
            )
    return None


@contextmanager
def vm_operation(call: Call, vm: str, op: str) -> Iterator[dict[str, Any]]:
    """Hold `op` on `vm` for the body; yields the VM record (see the module docstring)."""
    db = call.db
    task = call.task or schema.new_ref()
    deadline = time.monotonic() + call.sim.faults.lock_wait
    with db.lock:
        while True:
            error = operation_error(db, vm, op)
            if error is None:
                break
            if error.code != "OTHER_OPERATION_IN_PROGRESS" or time.monotonic() >= deadline:
                raise error
            if tasks.cancel_requested(db, call.task):
                raise XapiError("TASK_CANCELLED", call.task)
            db.changed.wait(min(1.0, max(0.01, deadline - time.monotonic())))
        record = db.get("VM", vm)
        db.update("VM", vm, current_operations={**record["current_operations"], task: op})
    try:
        if call.is_async:
            call.sim.simulate_work(call)
        yield db.get("VM", vm)
    finally:
        with db.lock:
            record = db.tables["VM"].get(vm)
            if record is not None and task in record["current_operations"]:
                rest = {k: v for k, v in record["current_operations"].items() if k != task}
                db.update("VM", vm, current_operations=rest)
