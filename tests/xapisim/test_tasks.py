"""Async calls and tasks (docs/xapi.md §8.7): progress, result fragments, error_info, cancel, GC;
and the session expiry that runs with the task GC (docs/xapi.md §2.1)."""

from __future__ import annotations

import time

import pytest
import XenAPI

from tests.xapisim.helpers import task_value, vm_by_name, wait_task
from xapisim import tasks
from xapisim.db import Database
from xapisim.errors import XapiError
from xapisim.pool import INACTIVE_SESSION_TIMEOUT, Simulator


def test_async_snapshot_result_is_a_value_fragment(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    task = x.Async.VM.snapshot(vm, "async")
    assert task.startswith("OpaqueRef:")
    record = wait_task(session, task)
    assert record["status"] == "success"
    assert record["progress"] == 1.0
    assert record["result"].startswith("<value>OpaqueRef:") and record["result"].endswith(
        "</value>"
    )
    snap = task_value(record)
    assert x.VM.get_snapshot_of(snap) == vm
    assert record["error_info"] == []
    assert record["finished"].value != "19700101T00:00:00Z"
    assert record["name_label"] == "Async.VM.snapshot"
    void = wait_task(session, x.Async.VM.clean_shutdown(vm))
    assert (void["status"], void["result"]) == ("success", "")


def test_async_failure_lands_in_error_info(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    halted = vm_by_name(session, "vm-00002")
    record = wait_task(session, x.Async.VM.checkpoint(halted, "cp"))
    assert record["status"] == "failure"
    assert record["error_info"] == [
        "VM_BAD_POWER_STATE",
        halted,
        "paused, suspended, running",
        "halted",
    ]
    assert record["result"] == ""


def test_async_progress_and_cancel(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    xapisim.sim("set_async_delay", 2.0)
    task = x.Async.VM.snapshot(vm, "slow")
    time.sleep(0.5)
    record = x.task.get_record(task)
    assert record["status"] == "pending"
    assert 0.0 < record["progress"] < 1.0
    assert record["allowed_operations"] == ["cancel"]
    x.task.cancel(task)  # recorded; the operation polls for it and ends cancelled
    done = wait_task(session, task)
    assert done["status"] == "cancelled"
    assert done["error_info"] == ["TASK_CANCELLED", task]
    assert x.VM.get_snapshots(vm) == []
    assert x.VM.get_current_operations(vm) == {}


def test_task_create_cancel_destroy(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    task = x.task.create("export vm-00000", "by xoweb")
    record = x.task.get_record(task)
    assert (record["status"], record["name_label"], record["name_description"]) == (
        "pending",
        "export vm-00000",
        "by xoweb",
    )
    assert record["progress"] == 0.0
    assert task in x.task.get_all_records()
    # task.cancel records the request and nothing else, and is never refused.
    x.task.cancel(task)
    x.task.cancel(task)
    record = x.task.get_record(task)
    assert record["status"] == "pending"
    assert list(record["current_operations"].values()) == ["cancel"]
    # task.destroy of a pending task only marks it; the row stays.
    x.task.destroy(task)
    record = x.task.get_record(task)
    assert record["status"] == "pending"
    assert record["current_operations"]["task"] == "destroy"
    x.task.set_status(task, "success")
    done = x.task.create("done", "")
    x.task.set_status(done, "failure")
    x.task.destroy(done)
    with pytest.raises(XenAPI.Failure) as gone:
        x.task.get_record(done)
    assert gone.value.details == ["HANDLE_INVALID", "task", done]


def test_the_gc_removes_ended_tasks_marked_for_destroy() -> None:
    db = Database()
    marked = tasks.create(db, "marked", "", "OpaqueRef:h", None)
    kept = tasks.create(db, "kept", "", "OpaqueRef:h", None)
    tasks.destroy(db, marked)
    assert tasks.garbage_collect(db) == 0  # still pending: it stays
    tasks.succeed(db, marked, None)
    tasks.succeed(db, kept, None)
    assert tasks.garbage_collect(db) == 1
    assert list(db.tables["task"]) == [kept]


def test_fail_next_applies_once(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    xapisim.sim("fail_next", "VM.snapshot", ["SR_FULL", "OpaqueRef:sr", "1", "2"])
    with pytest.raises(XenAPI.Failure) as full:
        x.VM.snapshot(vm, "first")
    assert full.value.details == ["SR_FULL", "OpaqueRef:sr", "1", "2"]
    assert x.VM.get_snapshot_of(x.VM.snapshot(vm, "second")) == vm


def test_task_garbage_collection_rules() -> None:
    db = Database()
    db.create("session", {"uuid": "s", "originator": ""}, ref="OpaqueRef:s")
    finished = [tasks.create(db, f"t{i}", "", "OpaqueRef:h", None) for i in range(3)]
    for ref in finished:
        tasks.succeed(db, ref, None)
    pending = tasks.create(db, "pending", "", "OpaqueRef:h", None)
    now = time.time()
    assert tasks.garbage_collect(db, now) == 0
    assert tasks.garbage_collect(db, now + tasks.COMPLETED_TTL + 1) == 3
    assert list(db.tables["task"]) == [pending]
    assert tasks.garbage_collect(db, now + tasks.PENDING_TTL + 1) == 1
    many = [tasks.create(db, f"m{i}", "", "OpaqueRef:h", None) for i in range(tasks.MAX_TASKS + 5)]
    for ref in many:
        tasks.fail(db, ref, XapiError("X"))
    assert tasks.garbage_collect(db, time.time()) == 5
    assert len(db.tables["task"]) == tasks.MAX_TASKS
    assert many[0] not in db.tables["task"] and many[-1] in db.tables["task"]


def test_idle_sessions_expire_after_24_hours(tmp_path) -> None:
    sim = Simulator(tmp_path, vms=0)
    host = sim.master_ref
    idle = sim.call(host, "session.login_with_password", ["root", "xapisim"])
    busy = sim.call(host, "session.login_with_password", ["root", "xapisim"])
    now = time.time()
    sim.session_used[idle] = now - INACTIVE_SESSION_TIMEOUT - 5
    sim.call(host, "pool.get_all", [busy])
    assert sim.expire_sessions(now) == 1
    with pytest.raises(XapiError) as expired:
        sim.call(host, "pool.get_all", [idle])
    assert expired.value.details == ["SESSION_INVALID", idle]
    assert sim.call(host, "pool.get_all", [busy]) == [sim.pool_ref]
