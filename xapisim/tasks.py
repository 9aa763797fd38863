"""Task lifecycle (docs/xapi.md §8.7): pending -> success | failure | cancelled, with progress,
`result` as an XML-RPC `<value>` fragment and `error_info` as [code, *params].

`task.cancel` only records `{caller: "cancel"}` in `current_operations`: work that polls for it
(`cancel_requested`) ends `cancelled`; the HTTP transfers never poll. `task.destroy` of a pending
task records `{"task": "destroy"}` and the GC removes the row once the task has ended.

Tasks are rows of the `task` table, so every change is an event clients can follow. They are not
persisted and vanish (without `del` events) on a toolstack restart or a failover.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import schema
from .errors import XapiError
from .wire import now, value_fragment

if TYPE_CHECKING:
    from .db import Database

# Garbage collection (xapi_globs.ml): completed after 65 min, pending after 24 h, at most 200.
COMPLETED_TTL = 65 * 60
PENDING_TTL = 24 * 3600
MAX_TASKS = 200
FINAL = ("success", "failure", "cancelled")


def create(db: Database, label: str, description: str, host: str, session: str | None) -> str:
    record = schema.new_record(
        "task",
        name_label=label,
        name_description=description,
        created=now(),
        resident_on=host,
        allowed_operations=["cancel"],
        other_config={},
    )
    ref = db.create("task", record)
    _born[ref] = time.time()
    return ref


_born: dict[str, float] = {}
_finished: dict[str, float] = {}


def set_progress(db: Database, task: str | None, progress: float) -> None:
    if task is None:
        return
    value = float(round(progress, 4))
    with db.lock:
        record = db.tables["task"].get(task)
        if record is not None and record["status"] == "pending" and record["progress"] != value:
            db.update("task", task, progress=value)


def cancel_requested(db: Database, task: str | None) -> bool:
    """Whether someone called `task.cancel` on this task (TaskHelper.is_cancelling)."""
    if task is None:
        return False
    with db.lock:
        record = db.tables["task"].get(task)
        return record is not None and "cancel" in record["current_operations"].values()


def forget(task: str) -> None:
    """Drop the bookkeeping of a task row deleted outside the GC."""
    _born.pop(task, None)
    _finished.pop(task, None)


def _finish(db: Database, task: str | None, **fields: Any) -> None:
    if task is None:
        return
    with db.lock:
        if not db.exists("task", task):
            return  # wiped by a restart meanwhile
        if db.tables["task"][task]["status"] in FINAL:
            return
        db.update("task", task, progress=1.0, finished=now(), allowed_operations=[], **fields)
        _finished[task] = time.time()


def succeed(db: Database, task: str | None, result: Any = None) -> None:
    """Complete with `result` written as XAPI writes it: `<value>…</value>`, or "" for void."""
    fragment = "" if result is None or result == "" else value_fragment(result)
    _finish(db, task, status="success", result=fragment)


def fail(db: Database, task: str | None, error: XapiError) -> None:
    if error.code == "TASK_CANCELLED":
        _finish(db, task, status="cancelled", error_info=error.details)
    else:
        _finish(db, task, status="failure", error_info=error.details)


def cancel(db: Database, task: str, caller: str) -> None:
    """Record the request, as `xapi_task.ml` does: nothing else (docs/xapi.md §8.7)."""
    with db.lock:
        db.get("task", task)
        db.update("task", task, current_operations={caller: "cancel"})


def destroy(db: Database, task: str) -> None:
    """Delete a finished task; mark a pending one, for the GC once it has ended."""
    with db.lock:
        record = db.get("task", task)
        if record["status"] in FINAL:
            db.delete("task", task)
            forget(task)
        else:
            db.update(
                "task", task, current_operations={**record["current_operations"], "task": "destroy"}
            )


def garbage_collect(db: Database, clock: float | None = None) -> int:
    """Apply XAPI's three task GC rules; returns how many tasks were destroyed."""
    clock = time.time() if clock is None else clock
    removed = 0
    with db.lock:
        rows = db.tables["task"]
        doomed = [
            ref
            for ref, r in rows.items()
            if (r["status"] in FINAL and "destroy" in r["current_operations"].values())
            or (r["status"] in FINAL and clock - _finished.get(ref, clock) > COMPLETED_TTL)
            or (r["status"] not in FINAL and clock - _born.get(ref, clock) > PENDING_TTL)
        ]
        completed = sorted(
            (_finished.get(ref, 0.0), ref) for ref, r in rows.items() if r["status"] in FINAL
        )
        excess = len(rows) - MAX_TASKS
        for _when, ref in completed:
            if excess <= 0:
                break
            if ref not in doomed:
                doomed.append(ref)
                excess -= 1
        for ref in doomed:
            db.delete("task", ref)
            _born.pop(ref, None)
            _finished.pop(ref, None)
            removed += 1
    return removed


class TaskGc(threading.Thread):
    """Runs `garbage_collect` (and `also`, the session expiry) every minute."""

    def __init__(self, db: Database, also: Callable[[], object] | None = None) -> None:
        super().__init__(name="xapisim-gc", daemon=True)
        self.db = db
        self.also = also
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(60):
            garbage_collect(self.db)
            if self.also is not None:
                self.also()


__all__ = [
    "cancel",
    "cancel_requested",
    "create",
    "destroy",
    "fail",
    "garbage_collect",
    "set_progress",
    "succeed",
]
