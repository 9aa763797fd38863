"""task.create / task.cancel / task.destroy (docs/xapi.md §8.7, §9.6)."""

from __future__ import annotations

from .. import tasks
from .registry import Call, api


@api("task.create")
def create(call: Call, label: str, description: str) -> str:
    """A pending task owned by the caller, to pass as `task_id` to the HTTP handlers."""
    return tasks.create(call.db, str(label), str(description), call.sim.master_ref, call.session)


@api("task.cancel")
def cancel(call: Call, task: str) -> None:
    tasks.cancel(call.db, task, call.task or call.session or "", bound=task in call.sim.bound_tasks)


@api("task.destroy")
def destroy(call: Call, task: str) -> None:
    with call.db.lock:
        call.db.get("task", task)
        call.db.delete("task", task)
