"""Rows → what the page, the JSON endpoint and ``task_list`` show: a tree of :class:`TaskView`.

The estimates are computed here, when read, from the rows' progress histories
(:mod:`tasks.estimates`); xoweb tasks and the XAPI tasks of the pools get the same treatment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.urls import reverse
from django.utils import timezone

from pools.liveness import Watch
from pools.models import XapiTask
from tasks.choices import TaskStatus, TaskUnit
from tasks.estimates import Estimate, Track, estimate
from tasks.models import Task
from xoweb.links import safe_link

XOWEB = "xoweb"

# XAPI task statuses in the words of our own tasks ("pending" means running in XAPI).
_XAPI_STATUS = {
    "pending": TaskStatus.RUNNING,
    "cancelling": TaskStatus.RUNNING,
    "success": TaskStatus.SUCCESS,
    "failure": TaskStatus.FAILURE,
    "cancelled": TaskStatus.CANCELLED,
}


@dataclass
class TaskView:
    """One task as shown: its row's facts, its estimate, and its children."""

    id: int
    source: str  # "xoweb", or the pool's name for an XAPI task
    name: str
    kind: str
    status: str
    unit: str
    estimate: Estimate
    url: str
    started: datetime | None = None
    ended: datetime | None = None
    error: str = ""
    about_label: str = ""
    about_url: str = ""
    pool_name: str = ""
    cancellable: bool = False
    cancel_requested: bool = False
    stale: bool = False  # XAPI: not live (pools.liveness): greyed, no estimate, no cancel
    liveness: str = ""  # XAPI: live, stale or unknown ("" for xoweb's own tasks)
    detail: str = ""  # XAPI: cancelling, why the task is not live
    children: list[TaskView] = field(default_factory=list)
    depth: int = 0
    ancestors: tuple[int, ...] = ()

    @property
    def is_xapi(self) -> bool:
        return self.source != XOWEB

    @property
    def percent(self) -> float | None:
        progress = self.estimate.progress
        return None if progress is None else round(progress * 100, 1)

    @property
    def rate_bps(self) -> float | None:
        return self.estimate.rate if self.unit == TaskUnit.BYTES else None

    def walk(self) -> Iterable[TaskView]:
        """This task and its descendants, depth first (the order of the page's rows)."""
        yield self
        for child in self.children:
            yield from child.walk()

    def as_json(self, *, with_children: bool = True) -> dict[str, Any]:
        result = self.estimate
        data: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "name": self.name,
            "kind": self.kind,
            "status": self.status,
            "stalled": result.stalled,
            "stale": self.stale,
            "liveness": self.liveness or None,
            "progress": None if result.progress is None else round(result.progress, 4),
            "unit": self.unit,
            "elapsed_s": _round(result.elapsed),
            "remaining_s": _round(result.remaining),
            "eta": _iso(result.eta),
            "rate": None if result.rate is None else round(result.rate, 3),
            "rate_bps": None if self.rate_bps is None else round(self.rate_bps, 1),
            "started": self.started.isoformat() if self.started else None,
            "ended": self.ended.isoformat() if self.ended else None,
            "error": self.error,
            "about": self.about_label,
            "about_url": self.about_url,
            "pool": self.pool_name or None,
            "cancellable": self.cancellable,
            "detail": self.detail,
            "url": self.url,
        }
        if with_children:
            data["children"] = [child.as_json() for child in self.children]
        return data


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, tz=UTC).isoformat()


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


# --- xoweb tasks ---------------------------------------------------------------------------------


def _track(row: Task, children_of: dict[int, list[Task]], now: datetime) -> Track:
    status = row.effective_status(now)
    ended = row.ended
    if status == TaskStatus.INTERRUPTED and ended is None:
        ended = row.updated  # its last heartbeat: nothing happened after it
    return Track(
        started=_ts(row.started),
        total=row.total,
        done=row.done,
        history=[(float(t), float(d)) for t, d in row.history or ()],
        ended=_ts(ended) if status in TaskStatus.final() else None,
        children=tuple(_track(child, children_of, now) for child in children_of.get(row.pk, ())),
    )


def _unit(row: Task, children: Sequence[Task]) -> str:
    if not children:
        return row.unit
    sized = [child.unit for child in children if child.total]
    if not sized:
        return TaskUnit.ITEMS
    return TaskUnit.BYTES if all(unit == TaskUnit.BYTES for unit in sized) else TaskUnit.ITEMS


def build_tree(rows: Sequence[Task], now: datetime | None = None) -> list[TaskView]:
    """The views of ``rows`` as trees: rows whose parent is not among them are the tops.

    Steps: index the rows by parent; build each top's estimate from its subtree (one walk per
    top, children estimated on the way); keep the order of ``rows`` among siblings.
    """
    now = now or timezone.now()
    present = {row.pk for row in rows}
    children_of: dict[int, list[Task]] = defaultdict(list)
    tops = []
    for row in rows:
        if row.parent_id in present:
            children_of[row.parent_id].append(row)
        else:
            tops.append(row)
    for siblings in children_of.values():
        siblings.sort(key=lambda row: row.pk)
    return [_view(row, children_of, now, 0, ()) for row in tops]


def _view(
    row: Task,
    children_of: dict[int, list[Task]],
    now: datetime,
    depth: int,
    ancestors: tuple[int, ...],
) -> TaskView:
    children = children_of.get(row.pk, [])
    status = row.effective_status(now)
    error = row.error
    if status != row.status and not error:
        error = "interrupted: its process stopped sending heartbeats"
    view = TaskView(
        id=row.pk,
        source=XOWEB,
        name=row.name,
        kind=row.kind,
        status=status,
        unit=_unit(row, children),
        estimate=estimate(_track(row, children_of, now), now.timestamp()),
        url=reverse("tasks:task_detail", args=[row.pk]),
        started=row.started,
        ended=row.ended,
        error=error,
        about_label=row.about_label,
        about_url=safe_link(row.about_url),
        pool_name=row.pool.name if row.pool_id and "pool" in row._state.fields_cache else "",
        cancellable=row.cancellable and status in TaskStatus.open(),
        cancel_requested=row.cancel_requested,
        depth=depth,
        ancestors=ancestors,
    )
    view.children = [
        _view(child, children_of, now, depth + 1, (*ancestors, row.pk)) for child in children
    ]
    return view


# --- XAPI tasks ----------------------------------------------------------------------------------


def _cancel_requested(xapi_task: XapiTask) -> bool:
    """XAPI records a cancel request in the task's ``current_operations`` and never sets the
    status ``cancelling`` itself (docs/xapi.md §8.7); older pools may still show that status."""
    operations = (xapi_task.record or {}).get("current_operations") or {}
    return xapi_task.status == "cancelling" or "cancel" in operations.values()


def xapi_view(xapi_task: XapiTask, watch: Watch) -> TaskView:
    """The view of one cached XAPI task (its pool loaded with it), at ``watch.now``.

    Whether it is shown live is :mod:`pools.liveness`'s verdict: a task of a lost pool, or seen
    by a watcher that died, is greyed, with no estimate and no cancel.
    """
    now = watch.now
    pool = xapi_task.pool
    verdict = watch.object(xapi_task, pool)
    stale = not verdict.live
    status = _XAPI_STATUS.get(xapi_task.status, TaskStatus.RUNNING)
    final = status in TaskStatus.final()
    created = _ts(xapi_task.created)
    ended = _ts(xapi_task.finished) if final else None
    if final and ended is None:
        ended = created
    track = Track(
        started=created,
        total=1.0,
        done=xapi_task.progress,
        history=[(float(t), float(p)) for t, p in xapi_task.progress_history or ()],
        ended=ended,
    )
    result = estimate(track, now.timestamp())
    if stale and not final:
        # A task that is not live gets no estimate: the pool it runs on is silent to us.
        result = Estimate(result.progress, result.elapsed, None, None, None)
    error = " ".join(str(part) for part in xapi_task.error_info or ())
    details = []
    if _cancel_requested(xapi_task):
        details.append("cancel requested")
    if stale:
        details.append(verdict.reason)
    return TaskView(
        id=xapi_task.pk,
        source=pool.name,
        name=xapi_task.name_label or xapi_task.ref,
        kind="xapi",
        status=status,
        unit=TaskUnit.RATIO,
        estimate=result,
        url=xapi_task.get_absolute_url(),
        started=xapi_task.created,
        ended=xapi_task.finished if final else None,
        error=error,
        about_label=xapi_task.name_description,
        pool_name=pool.name,
        cancellable=(not final and not stale and "cancel" in (xapi_task.allowed_operations or ())),
        stale=stale,
        liveness=verdict.liveness,
        detail=", ".join(details),
    )
