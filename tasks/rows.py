"""A task row while other processes write it too: every write by the process doing the work is
conditional on the row still being that process's, and says what happened when it is not.

The reporter (:mod:`tasks.reporter`) keeps a task's progress in memory and decides when to
write; this module is what it writes and under which condition. Other writers of the same rows
are the sweep (:func:`tasks.services.mark_interrupted`) and a cancel
(:func:`tasks.services.request_cancel`).

Every write is conditional on the row still running: progress stops with :class:`TaskCancelled`
or :class:`TaskInterrupted` when someone else changed it, and the final status never overwrites
``interrupted`` or ``cancelled`` set by someone else (the sweep, a cancel): the row keeps it.

**Who owns claims and heartbeats.** Task rows are the display of work, not its claim. A planned
task starts only once (a conditional update; a second start raises :class:`TaskNotStartable`),
which keeps a redelivered message from showing the work twice, but what makes work happen once
is the claim on the row that owns the work: for a backup, its run rows (``BackupRun``,
``VmBackup``), claimed by a conditional ``UPDATE … WHERE status='queued'`` and kept alive by a
heartbeat column. Both kinds of rows beat through the same mechanism, the process's
:data:`tasks.heartbeat.heartbeat`, so a dead process stops both at once
(docs/architecture.md §Claims and heartbeats).

Times come in as unix seconds (``now``) from the caller, whose clock tests replace.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from pools.models import Pool
from tasks.choices import TaskStatus, TaskUnit
from tasks.models import Task

logger = logging.getLogger(__name__)


class TaskCancelled(Exception):
    """A person asked to cancel the task; raised in the code doing its work."""


class TaskInterrupted(Exception):
    """The task's row was marked interrupted (its heartbeat stopped) while this process ran it."""


class TaskNotStartable(Exception):
    """A planned task cannot be started: it is gone or was already started (a redelivery)."""


@dataclass(frozen=True)
class TaskOptions:
    """How a task is described: the options of :func:`~tasks.reporter.task`, ``subtask`` and
    ``plan``.

    ``about`` is the object the task is about: its ``str()`` is shown, its
    ``get_absolute_url()`` linked, and its pool (a ``Pool``, or anything with a ``pool_id``)
    used by the task page's pool filter. A string is only a label.
    """

    kind: str = ""
    total: float | None = None
    unit: str = TaskUnit.BYTES
    about: Any = None
    cancellable: bool = False

    def row(self) -> dict[str, Any]:
        """The columns these options give a new row."""
        total = None if self.total is None else float(self.total)
        return {
            "kind": self.kind,
            "unit": self.unit,
            "total": total,
            "progress": 0.0 if total else None,
            "cancellable": self.cancellable,
            **_about_fields(self.about),
        }


def _about_fields(about: Any) -> dict[str, Any]:
    if about is None:
        return {}
    if isinstance(about, str):
        return {"about_label": about[:255]}
    fields: dict[str, Any] = {"about_label": str(about)[:255]}
    if hasattr(about, "get_absolute_url"):
        try:
            fields["about_url"] = about.get_absolute_url()[:500]
        except Exception:  # a model without a page: keep the label only
            pass
    if isinstance(about, Pool):
        fields["pool_id"] = about.pk
    elif getattr(about, "pool_id", None):
        fields["pool_id"] = about.pool_id
    return fields


def moment(seconds: float) -> datetime:
    """The column value of a unix time."""
    return datetime.fromtimestamp(seconds, tz=UTC)


# --- start ----------------------------------------------------------------------------------


def create_running(
    name: str,
    *,
    parent_id: int | None,
    root_id: int | None,
    options: TaskOptions,
    now: float,
    host: str,
) -> Task:
    """A new row, running since ``now`` on ``host``."""
    return Task.objects.create(
        name=name[:255],
        parent_id=parent_id,
        root_id=root_id,
        status=TaskStatus.RUNNING,
        history=[],
        created=moment(now),
        started=moment(now),
        updated=moment(now),
        host=host,
        **options.row(),
    )


def create_planned(name: str, *, parent_id: int, root_id: int | None, options: TaskOptions) -> Task:
    """A new pending row under ``parent_id``, to be claimed later by :func:`claim_planned`."""
    return Task.objects.create(
        name=name[:255],
        parent_id=parent_id,
        root_id=root_id,
        status=TaskStatus.PENDING,
        **options.row(),
    )


def cancel_asked(task_id: int) -> bool:
    """Whether a cancel was asked of the task: no new step starts under a cancelled task
    (its running steps stop at their next progress write)."""
    return Task.objects.filter(pk=task_id, cancel_requested=True).exists()


def claim_planned(planned_id: int, *, now: float, host: str) -> Task:
    """Start the planned row ``planned_id`` on ``host``, once; return it as claimed.

    Raises :class:`TaskNotStartable` when it is gone or was already started (a redelivered
    message), with the task's current status in the message.
    """
    claimed = Task.objects.filter(pk=planned_id, status=TaskStatus.PENDING).update(
        status=TaskStatus.RUNNING, started=moment(now), updated=moment(now), host=host
    )
    row = Task.objects.filter(pk=planned_id).first()
    if row is None:
        raise TaskNotStartable(f"task {planned_id} does not exist (pruned or never planned)")
    if not claimed:
        raise TaskNotStartable(
            f"task {planned_id} ({row.name}) is already {row.get_status_display().lower()}: "
            "a task is started only once"
        )
    return row


# --- progress -------------------------------------------------------------------------------


def write_progress(
    task_id: int,
    *,
    now: float,
    done: float,
    total: float | None,
    unit: str,
    progress: float | None,
    history: list,
) -> bool:
    """Write the progress, conditionally on the row still running without a cancel request;
    return whether it was written (when not: :func:`why_not_written`)."""
    return bool(
        Task.objects.filter(pk=task_id, status=TaskStatus.RUNNING, cancel_requested=False).update(
            done=done,
            total=total,
            unit=unit,
            progress=progress,
            history=history,
            updated=moment(now),
        )
    )


def why_not_written(task_id: int, name: str) -> TaskCancelled | TaskInterrupted:
    """The error to stop the work with, read from the row a progress write did not match."""
    row = Task.objects.filter(pk=task_id).values("status", "cancel_requested").first()
    if row is None:
        return TaskInterrupted(f"task {task_id} ({name}) was deleted while it ran")
    if row["cancel_requested"]:
        return TaskCancelled(f"{name}: cancelled on request")
    return TaskInterrupted(
        f"task {task_id} ({name}) was marked {row['status']} while this process ran it "
        f"(no heartbeat for {settings.TASK_INTERRUPTED_AFTER_SECONDS} s): stopping"
    )


# --- end ------------------------------------------------------------------------------------


def write_end(
    task_id: int, name: str, status: str, message: str, *, now: float, columns: dict[str, Any]
) -> str:
    """Write the final status, unless someone else ended the row first; return the status the
    row has now.

    Steps: write ``status`` and ``message`` with ``columns`` (the final progress, the result)
    conditionally on the row still running; when that matched nothing (interrupted by the
    sweep, cancelled), keep the row's status and only fill in an end time and a message it
    lacks; cancel the children still pending.
    """
    fields: dict[str, Any] = {
        "status": status,
        **columns,
        "updated": moment(now),
        "ended": moment(now),
        "error": message,
    }
    if Task.objects.filter(pk=task_id, status=TaskStatus.RUNNING).update(**fields):
        ended = status
    else:
        ended = _keep_their_end(task_id, name, status, message, now)
    left = Task.objects.filter(parent_id=task_id, status=TaskStatus.PENDING)
    left.update(
        status=TaskStatus.CANCELLED,
        ended=moment(now),
        updated=moment(now),
        error=f"not started: {name} ended ({ended})",
    )
    return ended


def _keep_their_end(task_id: int, name: str, status: str, message: str, now: float) -> str:
    row = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
    if row is None:
        return status
    if row != status:
        logger.warning(
            "task %s (%s) ended here as %s, but was already %s: its status is kept",
            task_id,
            name,
            status,
            row,
        )
    Task.objects.filter(pk=task_id, ended__isnull=True).update(ended=moment(now))
    if message:
        Task.objects.filter(pk=task_id, error="").update(error=message)
    return row
