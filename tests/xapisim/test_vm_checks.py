"""The checks of a VM operation, in XAPI's order, and the operation lock (docs/xapi.md §8.10):
blocked operations first, XAPI's lists of power states, snapshots and templates, dom0, and
conflicting operations that wait inside the call."""

from __future__ import annotations

import threading
import time

import pytest
import XenAPI

from tests.xapisim.helpers import vm_by_name, wait_task


def failure(call, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        call(*args)
    return raised.value.details


@pytest.fixture
def small(xapisim_factory):
    sim = xapisim_factory(vms=3, disk_size="16M")
    session = sim.session()
    return sim, session, session.xenapi


def test_blocked_operations_come_first_and_snapshots_start_unblocked(small) -> None:
    _sim, session, x = small
    halted = vm_by_name(session, "vm-00002")
    x.VM.add_to_blocked_operations(halted, "checkpoint", "no memory images here")
    x.VM.add_to_blocked_operations(halted, "start", "replica")
    # Blocked wins over the power state, which would refuse a halted checkpoint too.
    assert failure(x.VM.checkpoint, halted, "cp") == [
        "OPERATION_BLOCKED",
        halted,
        "no memory images here",
    ]
    assert failure(x.VM.start, halted, False, False) == ["OPERATION_BLOCKED", halted, "replica"]
    snapshot = x.VM.snapshot(halted, "unblocked")
    assert x.VM.get_blocked_operations(snapshot) == {}
    x.VM.update_allowed_operations(halted)  # XO calls it after changing blocked_operations
    assert "start" not in x.VM.get_allowed_operations(halted)
    x.VM.remove_from_blocked_operations(halted, "start")
    x.VM.start(halted, False, False)
    assert x.VM.get_power_state(halted) == "Running"


def test_xapis_lists_of_power_states(small) -> None:
    _sim, session, x = small
    running = vm_by_name(session, "vm-00001")
    halted = vm_by_name(session, "vm-00002")
    assert failure(x.VM.clone, running, "c") == ["VM_BAD_POWER_STATE", running, "halted", "running"]
    assert failure(x.VM.destroy, running) == [
        "VM_BAD_POWER_STATE",
        running,
        "halted, suspended",
        "running",
    ]
    assert failure(x.VM.hard_shutdown, halted) == [
        "VM_BAD_POWER_STATE",
        halted,
        "paused, suspended, running",
        "halted",
    ]
    assert failure(x.VM.clean_shutdown, halted) == [
        "VM_BAD_POWER_STATE",
        halted,
        "running",
        "halted",
    ]
    # A checkpoint is allowed on a suspended VM too: a clone of a checkpoint is one.
    suspended = x.VM.clone(x.VM.checkpoint(running, "cp"), "suspended")
    assert x.VM.get_power_state(suspended) == "Suspended"
    assert failure(x.VM.checkpoint, suspended, "t") == ["VM_IS_TEMPLATE", suspended, "checkpoint"]
    x.VM.set_is_a_template(suspended, False)  # a clone of a snapshot is a template
    again = x.VM.checkpoint(suspended, "checkpoint of a suspended VM")
    assert x.VM.get_power_state(again) == "Suspended"
    assert x.VM.get_suspend_VDI(again) not in ("OpaqueRef:NULL", x.VM.get_suspend_VDI(suspended))


def test_snapshots_templates_and_dom0_refuse_a_snapshot(small) -> None:
    _sim, session, x = small
    halted = vm_by_name(session, "vm-00002")
    snapshot = x.VM.snapshot(halted, "first")
    assert failure(x.VM.snapshot, snapshot, "second") == ["VM_IS_SNAPSHOT", snapshot, "snapshot"]
    assert failure(x.VM.start, snapshot, False, False) == ["VM_IS_SNAPSHOT", snapshot, "start"]
    template = x.VM.clone(halted, "template")
    x.VM.set_is_a_template(template, True)
    assert failure(x.VM.snapshot, template, "t") == ["VM_IS_TEMPLATE", template, "snapshot"]
    assert failure(x.VM.start, template, False, False) == ["VM_IS_TEMPLATE", template, "start"]
    assert x.VM.get_is_a_template(x.VM.clone(template, "from template")) is True
    dom0 = next(r for r, v in x.VM.get_all_records().items() if v["is_control_domain"])
    assert failure(x.VM.snapshot, dom0, "d") == [
        "OPERATION_NOT_ALLOWED",
        "This operation is not allowed on a control domain",
    ]


def test_async_checks_run_in_the_task(small) -> None:
    """The call returns a task; the refusal lands in its error_info (docs/xapi.md §8.10)."""
    _sim, session, x = small
    halted = vm_by_name(session, "vm-00002")
    snapshot = x.VM.snapshot(halted, "s")
    task = x.Async.VM.snapshot(snapshot, "nested")
    record = wait_task(session, task)
    assert (record["status"], record["error_info"]) == (
        "failure",
        ["VM_IS_SNAPSHOT", snapshot, "snapshot"],
    )
    gone = x.Async.VM.snapshot("OpaqueRef:no-such-vm", "x")
    assert wait_task(session, gone)["error_info"] == [
        "HANDLE_INVALID",
        "VM",
        "OpaqueRef:no-such-vm",
    ]


def test_snapshot_and_checkpoint_run_together_other_operations_wait(small) -> None:
    sim, session, x = small
    running = vm_by_name(session, "vm-00001")
    sim.sim("set_async_delay", "0.8")
    snapshot = x.Async.VM.snapshot(running, "s")
    checkpoint = x.Async.VM.checkpoint(running, "c")
    time.sleep(0.3)
    assert sorted(x.VM.get_current_operations(running).items()) == sorted(
        [(snapshot, "snapshot"), (checkpoint, "checkpoint")]
    )
    # A conflicting synchronous call blocks until both are done, then runs.
    started = time.monotonic()
    x.VM.clean_shutdown(running)
    waited = time.monotonic() - started
    assert waited >= 0.3
    assert [wait_task(session, t)["status"] for t in (snapshot, checkpoint)] == [
        "success",
        "success",
    ]
    assert x.VM.get_power_state(running) == "Halted"
    assert x.VM.get_current_operations(running) == {}


def test_a_conflict_that_outlasts_the_wait_is_other_operation_in_progress(small) -> None:
    sim, session, x = small
    running = vm_by_name(session, "vm-00000")
    sim.sim("set_async_delay", "1.5")
    sim.sim("set_lock_wait", "0.2")
    task = x.Async.VM.snapshot(running, "slow")
    time.sleep(0.2)
    assert failure(x.VM.clean_shutdown, running) == [
        "OTHER_OPERATION_IN_PROGRESS",
        "VM",
        running,
        "snapshot",
        task,
    ]
    # An Async call waits in its task, and a cancel ends the wait. (Not a hard_shutdown: that
    # one may run beside anything but another hard_shutdown.)
    sim.sim("set_lock_wait", "30")
    waiting = x.Async.VM.clean_shutdown(running)
    threading.Timer(0.2, lambda: sim.session().xenapi.task.cancel(waiting)).start()
    record = wait_task(session, waiting)
    assert (record["status"], record["error_info"]) == ("cancelled", ["TASK_CANCELLED", waiting])
    assert wait_task(session, task)["status"] == "success"
    assert x.VM.get_power_state(running) == "Running"
