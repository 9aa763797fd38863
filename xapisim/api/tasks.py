"""task.create / task.cancel / task.destroy (docs/xapi.md §8.7, §9.6)."""

from __future__ import annotations

from .. import schema, tasks
from .registry import Call, api


@api("task.create")
def create(call: Call, label: str, description: str) -> str:
    """A pending task owned by the caller, to pass as `task_id` to the HTTP handlers."""
    return tasks.create(call.db, str(label), str(description), call.sim.master_ref, call.session)


@api("task.cancel")
def cancel(call: Call, task: str) -> None:
    """Only recorded, under the ref of the cancelling call; never refused (docs/xapi.md §8.7)."""
    tasks.cancel(call.db, task, schema.new_ref())


@api("task.destroy")
def destroy(call: Call, task: str) -> None:
    """A finished task goes; a pending one is marked and goes after it ends."""
    tasks.destroy(call.db, task)
