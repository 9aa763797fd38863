"""The progress reporter: how every long operation of xoweb shows up in the task tree.

Use it as a context manager; the task succeeds when the block ends, fails with the exception's
message when it raises (the exception goes on), and is the implicit parent of the tasks started
inside the block::

    from tasks.reporter import start_planned, task

    with task("Backup run of job nightly", kind="run", about=job) as run:
        # Plan the children up front, so that the run's estimate covers those not started.
        planned = [run.plan(vm.name_label, kind="vm", total=vm_size(vm), about=vm) for vm in vms]
        for child in planned:
            backup_vm.delay(child.id)            # another worker process picks it up

    # in the worker process:
    with start_planned(vm_task_id) as vm:        # starts the planned row (only once)
        with task("snapshot", kind="snapshot"):  # parent: the current task, `vm`
            ...
        with vm.subtask("transfer xvda", kind="transfer", total=disk_size) as transfer:
            for block in export_stream:
                transfer.advance(len(block))     # cheap: writes are throttled
        vm.warning("disk xvdb skipped: its name contains [NOBAK]")
        vm.set_result({"size": transfer.done})

``task(name, ...)`` always creates a new task; :func:`start_planned` starts one created earlier
by :meth:`TaskReporter.plan`. Both, ``subtask`` and ``plan`` take the same options
(:class:`~tasks.rows.TaskOptions`). The backup engine sees a reporter only through its
``Progress`` protocol: ``subtask(name, kind=, total=)``, ``advance``, ``update``, ``info``,
``warning`` and ``check`` keep their meaning.

Writes to the database are throttled: a task's row is written at most about once a second
(``FLUSH_SECONDS``), plus once on each whole percent, never once per block. The process's
heartbeat (:mod:`tasks.heartbeat`, apart from the reporter objects) touches the ``updated``
column of every task running in the process every ``TASK_HEARTBEAT_SECONDS``, even while the
work blocks; when the process dies the beats stop, and :func:`tasks.services.mark_interrupted`
(periodic) or any reader (``Task.effective_status``) turns the task interrupted.

Every write is conditional on the row still running (:mod:`tasks.rows`: the writes, the
conditions, and who owns claims and heartbeats): progress stops with :class:`TaskCancelled` or
:class:`TaskInterrupted` when someone else changed it, and a planned task starts only once
(:class:`TaskNotStartable`).

A task created ``cancellable=True`` can be cancelled from the task page: the next throttled
write notices it and raises :class:`TaskCancelled` from ``advance()``/``check()``, which ends
the task as cancelled; a subtask does not even start under a task whose cancel was asked
(``tasks.services.request_cancel_tree`` asks it of a whole subtree, for the owner of the work).
Works the same in a Celery worker and in a plain process. Do not open a task inside
``transaction.atomic()``: its rows must be visible to other processes as they change.
"""

from __future__ import annotations

import contextvars
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tasks.choices import LogLevel, TaskStatus, TaskUnit
from tasks.estimates import append_sample
from tasks.heartbeat import heartbeat
from tasks.models import Task, TaskLogEntry
from tasks.rows import (
    TaskCancelled,
    TaskInterrupted,
    TaskNotStartable,
    TaskOptions,
    cancel_asked,
    claim_planned,
    create_planned,
    create_running,
    why_not_written,
    write_end,
    write_progress,
)

# The exceptions and TaskOptions live with the row writes that raise and use them; callers
# import them from here, with the reporter they come from.
__all__ = [
    "TaskCancelled",
    "TaskInterrupted",
    "TaskNotStartable",
    "TaskOptions",
    "TaskReporter",
    "attach",
    "current_task",
    "no_current_task",
    "start_planned",
    "task",
]

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
LOG_MAX_ENTRIES = 200

_DEFAULT_OPTIONS = TaskOptions()  # frozen: safe to share

_current: contextvars.ContextVar[TaskReporter | None] = contextvars.ContextVar(
    "xoweb_current_task", default=None
)


def current_task() -> TaskReporter | None:
    """The task whose ``with`` block is running in this context, if any."""
    return _current.get()


def task(
    name: str, *, parent: TaskReporter | Task | int | None = None, **options: Any
) -> TaskReporter:
    """A new task named ``name``, created when its ``with`` block starts, under ``parent`` (by
    default the current task). ``options`` are :class:`TaskOptions`' fields."""
    if not isinstance(name, str):
        raise TypeError(
            f"task() takes the new task's name, not {name!r}: "
            "start a planned task with start_planned(task_id)"
        )
    return TaskReporter(
        name, parent=current_task() if parent is None else parent, options=TaskOptions(**options)
    )


def start_planned(planned: Task | int) -> TaskReporter:
    """The task created earlier by :meth:`TaskReporter.plan`, to run in a ``with`` block.

    It starts once: a second start (a redelivered message) raises :class:`TaskNotStartable`,
    with the task's current status in its message.
    """
    return TaskReporter(planned_id=planned.pk if isinstance(planned, Task) else int(planned))


def _now() -> float:
    return time.time()


def _error_message(error: BaseException) -> str:
    message = str(error).strip()
    return message or type(error).__name__


class TaskReporter:
    """A handle on one task row, used by the code doing the task's work (see the module doc).

    Made by :func:`task`, :func:`start_planned` or :meth:`subtask`, not directly.
    """

    def __init__(
        self,
        name: str = "",
        *,
        parent: TaskReporter | Task | int | None = None,
        options: TaskOptions = _DEFAULT_OPTIONS,
        planned_id: int | None = None,
    ) -> None:
        self.id: int | None = None
        self.root_id: int | None = None
        self.name = name
        self._planned_id = planned_id
        self._parent = parent
        self._options = options
        self.cancellable = options.cancellable
        self.unit = options.unit
        self.total = None if options.total is None else float(options.total)
        self.done = 0.0
        self.status = TaskStatus.PENDING
        self._result: Any = None
        self._history: list[tuple[float, float]] = []
        self._last_flush = 0.0
        self._last_percent = -1
        self._log_count = 0
        self._token: contextvars.Token | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<TaskReporter {self.id} {self.name!r} {self.status}>"

    # --- life cycle -----------------------------------------------------------------------------

    def __enter__(self) -> TaskReporter:
        self.start()
        self._token = _current.set(self)
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
        if error is None:
            self.succeed()
        elif isinstance(error, TaskCancelled):
            self._end(TaskStatus.CANCELLED, _error_message(error))
        elif isinstance(error, TaskInterrupted):
            # This task's row, or a sub-task's, was declared dead: stop, and say why.
            self._end(TaskStatus.INTERRUPTED, _error_message(error))
        elif isinstance(error, Exception):
            self.fail(error)
        else:  # KeyboardInterrupt, SystemExit, a worker being terminated
            self._end(TaskStatus.INTERRUPTED, f"interrupted: {_error_message(error)}")
        return False

    def start(self) -> TaskReporter:
        """Create the row (or claim the planned one) as running. ``with`` calls it."""
        now = _now()
        host = f"{socket.gethostname()}:{os.getpid()}"[:255]
        if self._planned_id is not None:
            self._claim(self._planned_id, now, host)
        else:
            parent_id, root_id = self._parent_ids()
            # No new step starts under a cancelled task (its running steps stop at their next
            # progress write).
            if parent_id is not None and cancel_asked(parent_id):
                raise TaskCancelled(f"{self.name}: not started, its parent task was cancelled")
            row = create_running(
                self.name,
                parent_id=parent_id,
                root_id=root_id,
                options=self._options,
                now=now,
                host=host,
            )
            self.id, self.root_id = row.pk, root_id or row.pk
        self.status = TaskStatus.RUNNING
        self._last_flush = now
        heartbeat.hold(Task, self.id, field="updated", status=TaskStatus.RUNNING)
        return self

    def _claim(self, planned_id: int, now: float, host: str) -> None:
        row = claim_planned(planned_id, now=now, host=host)
        self.id, self.root_id = row.pk, row.root_id or row.pk
        self.name, self.unit, self.cancellable = row.name, row.unit, row.cancellable
        self.total, self.done = row.total, row.done
        self._history = [tuple(sample) for sample in row.history]

    def _parent_ids(self) -> tuple[int | None, int | None]:
        parent = self._parent
        if parent is None:
            return None, None
        if isinstance(parent, TaskReporter):
            if parent.id is None:
                raise ValueError(f"parent task {parent.name!r} has not started")
            return parent.id, parent.root_id
        row = parent if isinstance(parent, Task) else Task.objects.get(pk=int(parent))
        return row.pk, row.root_id or row.pk

    def succeed(self, result: Any = None) -> None:
        """End the task as a success (``with`` calls it when the block ends normally)."""
        if result is not None:
            self._result = result
        self._end(TaskStatus.SUCCESS, "")

    def fail(self, error: BaseException | str) -> None:
        """End the task as a failure, with the error's message (logged as an error too)."""
        message = error if isinstance(error, str) else _error_message(error)
        self.error(message)
        self._end(TaskStatus.FAILURE, message)

    def interrupt(self, message: str) -> None:
        """End the task as interrupted (its work stopped without failing), with why."""
        self._end(TaskStatus.INTERRUPTED, message)

    def cancel(self, message: str) -> None:
        """End the task as cancelled (someone asked for it), with who and what it left."""
        self._end(TaskStatus.CANCELLED, message)

    def _end(self, status: str, message: str) -> None:
        """Write the final status, unless someone else ended the row first.

        Steps: stop beating; take the last progress sample; write the end with the final
        progress and the result (:func:`tasks.rows.write_end`: conditional on the row still
        running, else the row keeps its status; the children still pending are cancelled).
        """
        heartbeat.release(Task, self.id)
        now = _now()
        self._history = append_sample(self._history, now, self.done)
        columns: dict[str, Any] = {"done": self.done, "history": self._history}
        if status == TaskStatus.SUCCESS:
            columns["progress"] = 1.0
        elif self.total:
            columns["progress"] = min(1.0, self.done / self.total)
        if self._result is not None:
            columns["result"] = self._result
        self.status = write_end(self.id, self.name, status, message, now=now, columns=columns)

    # --- progress -------------------------------------------------------------------------------

    def advance(self, units: float) -> None:
        """Count ``units`` more done (bytes for a transfer). Cheap: writes are throttled."""
        self.done += units
        self._maybe_flush()

    def update(self, *, done: float | None = None, total: float | None = None) -> None:
        """Set the units done and/or the total (e.g. when the size becomes known)."""
        if total is not None:
            self.total = float(total)
        if done is not None:
            self.done = float(done)
        self._maybe_flush(force=total is not None)

    def set_progress(self, ratio: float) -> None:
        """For work that only knows a ratio (0..1), like an XAPI task's ``progress``."""
        self.unit, self.total = TaskUnit.RATIO, 1.0
        self.done = max(0.0, min(1.0, float(ratio)))
        self._maybe_flush()

    def set_result(self, result: Any) -> None:
        """A JSON-serialisable result, stored when the task ends."""
        self._result = result

    def check(self) -> None:
        """Write now if due, and raise :class:`TaskCancelled` if a cancel was requested."""
        self._maybe_flush()

    @property
    def progress(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def _maybe_flush(self, *, force: bool = False) -> None:
        now = _now()
        progress = self.progress
        percent = -1 if progress is None else int(progress * 100)
        if force or now - self._last_flush >= FLUSH_SECONDS or percent > self._last_percent:
            self.flush(now)

    def flush(self, now: float | None = None) -> None:
        """Write the progress now. The update is conditional on the row still running without a
        cancel request: when it matches nothing, the reason is read and raised."""
        if self.id is None or self.status != TaskStatus.RUNNING:
            return
        now = _now() if now is None else now
        progress = self.progress
        with self._lock:
            self._history = append_sample(self._history, now, self.done)
            written = write_progress(
                self.id,
                now=now,
                done=self.done,
                total=self.total,
                unit=self.unit,
                progress=progress,
                history=self._history,
            )
        self._last_flush = now
        self._last_percent = -1 if progress is None else int(progress * 100)
        if not written:
            raise why_not_written(self.id, self.name)

    # --- log ------------------------------------------------------------------------------------

    def info(self, message: str) -> None:
        self._log(LogLevel.INFO, message)

    def warning(self, message: str) -> None:
        self._log(LogLevel.WARNING, message)

    def error(self, message: str) -> None:
        self._log(LogLevel.ERROR, message)

    def _log(self, level: str, message: str) -> None:
        logger.log(
            {"info": logging.INFO, "warning": logging.WARNING}.get(level, logging.ERROR),
            "task %s (%s): %s",
            self.id,
            self.name,
            message,
        )
        if self.id is None:
            return
        self._log_count += 1
        if self._log_count > LOG_MAX_ENTRIES + 1:
            return
        if self._log_count == LOG_MAX_ENTRIES + 1:
            level, message = LogLevel.WARNING, f"log full: messages after {LOG_MAX_ENTRIES} dropped"
        TaskLogEntry.objects.create(task_id=self.id, level=level, message=message)

    def detach(self) -> None:
        """Leave this running task open for other processes: this process stops beating it.

        For work that outlives the process that started it (a backup run whose VMs are backed
        up by other worker processes): those processes hold its row in their heartbeat
        (``heartbeat.holding(Task, id, status="running")``) and the last one ends it through
        :func:`attach`.
        """
        heartbeat.release(Task, self.id)

    # --- children -------------------------------------------------------------------------------

    def subtask(
        self, name: str, *, kind: str = "", total: float | None = None, **options: Any
    ) -> TaskReporter:
        """A child task to run in a ``with`` block (options as for :func:`task`)."""
        return task(name, parent=self, kind=kind, total=total, **options)

    def plan(self, name: str, **options: Any) -> Task:
        """Create a pending child now, to be started later with :func:`start_planned`.

        Planned children count in this task's progress and estimate before they start. Those
        still pending when this task ends are cancelled ("not started").
        """
        if self.id is None:
            raise ValueError(f"task {self.name!r} must start before it plans children")
        return create_planned(
            name, parent_id=self.id, root_id=self.root_id, options=TaskOptions(**options)
        )


def attach(task_id: int) -> TaskReporter:
    """A handle on a running task that another process opened and :meth:`~TaskReporter.detach`ed:
    to log into it, or end it (``succeed``/``fail``/``interrupt``). This process does not beat
    for it."""
    row = Task.objects.get(pk=task_id)
    reporter = TaskReporter(
        row.name, options=TaskOptions(unit=row.unit, total=row.total, kind=row.kind)
    )
    reporter.id, reporter.root_id = row.pk, row.root_id or row.pk
    reporter.status, reporter.done = row.status, row.done
    reporter._history = [tuple(sample) for sample in row.history]
    reporter._log_count = row.log.count()
    return reporter


@contextmanager
def no_current_task() -> Iterator[None]:
    """Run a block with no implicit parent (a new root task inside another task's block)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)
