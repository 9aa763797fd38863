"""The task list as the page, the JSON endpoint and ``task_list`` see it: filters and one page.

A page costs a fixed number of queries whatever the number of tasks: the count and the slice
of roots, the trees of those roots (bounded), the XAPI tasks (bounded) and the pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.paginator import Page, Paginator
from django.utils import timezone

from pools.choices import XapiTaskStatus
from pools.liveness import current_watch
from pools.models import Pool, XapiTask
from tasks.models import Task
from tasks.presenters import TaskView, build_tree, xapi_view
from xoweb.params import BadParameter, parse_id

STATUS_FILTERS = {
    "": "all",
    "running": "running",
    "failed": "failed",
    "recent": "last 24 hours",
}
ROOTS_PER_PAGE = 25
MAX_TREE_ROWS = 2000  # rows of the trees of one page; a bigger tree is cut, see its detail page
MAX_XAPI_TASKS = 100


class BadFilter(ValueError):
    """A filter of the task list has a value it does not know."""


@dataclass(frozen=True)
class TaskFilters:
    status: str = ""
    pool: int | None = None

    @classmethod
    def from_params(cls, params) -> TaskFilters:
        status = params.get("status", "")
        if status not in STATUS_FILTERS:
            known = ", ".join(name for name in STATUS_FILTERS if name)
            raise BadFilter(f"status={status!r} is not a filter: use one of {known}")
        try:
            pool = parse_id("pool", params.get("pool", ""))
        except BadParameter as error:
            raise BadFilter(str(error)) from None
        return cls(status=status, pool=pool)

    def query(self) -> str:
        parts = []
        if self.status:
            parts.append(f"status={self.status}")
        if self.pool:
            parts.append(f"pool={self.pool}")
        return "&".join(parts)


@dataclass
class TaskPage:
    tasks: list[TaskView]
    xapi_tasks: list[TaskView]
    page: Page
    filters: TaskFilters
    pools: list[Pool]
    truncated: bool
    now: datetime

    def rows(self) -> list[TaskView]:
        return [view for root in self.tasks for view in root.walk()]


def filtered_tasks(filters: TaskFilters, now: datetime):
    tasks = Task.objects.all()
    if filters.status == "running":
        tasks = tasks.alive(now)
    elif filters.status == "failed":
        tasks = tasks.failed(now)
    elif filters.status == "recent":
        tasks = tasks.recent()
    if filters.pool:
        tasks = tasks.filter(pool_id=filters.pool)
    return tasks


def filtered_xapi_tasks(filters: TaskFilters):
    xapi_tasks = XapiTask.objects.select_related("pool").order_by("status", "-created", "-pk")
    if filters.status == "running":
        xapi_tasks = xapi_tasks.running()
    elif filters.status == "failed":
        xapi_tasks = xapi_tasks.filter(status=XapiTaskStatus.FAILURE)
    elif filters.status == "recent":
        xapi_tasks = xapi_tasks.filter(created__gte=timezone.now() - timedelta(hours=24))
    if filters.pool:
        xapi_tasks = xapi_tasks.filter(pool_id=filters.pool)
    return xapi_tasks


def task_page(
    filters: TaskFilters, page_number: int | str = 1, *, per_page: int = ROOTS_PER_PAGE
) -> TaskPage:
    """One page of task trees matching ``filters``, with the XAPI tasks beside them.

    Steps: page through the matching roots (tasks matching the filter whose parent does not);
    load the trees of that page's roots in one query, bounded; estimate them; then the XAPI
    tasks (bounded) and the pools for the filter menu.
    """
    now = timezone.now()
    roots = filtered_tasks(filters, now).roots().order_by("-created", "-pk")
    page = Paginator(roots, per_page).get_page(page_number)
    root_ids = [root.pk for root in page.object_list]
    rows = list(
        Task.objects.trees(root_ids).select_related("pool").order_by("pk")[: MAX_TREE_ROWS + 1]
    )
    truncated = len(rows) > MAX_TREE_ROWS
    rows = rows[:MAX_TREE_ROWS]
    order = {pk: index for index, pk in enumerate(root_ids)}
    views = sorted(build_tree(rows, now), key=lambda view: order.get(view.id, len(order)))
    xapi_rows = list(filtered_xapi_tasks(filters)[:MAX_XAPI_TASKS]) if page.number == 1 else []
    watch = current_watch(now) if xapi_rows else None
    return TaskPage(
        tasks=[view for view in views if view.id in order],
        xapi_tasks=[xapi_view(row, watch) for row in xapi_rows],
        page=page,
        filters=filters,
        pools=list(Pool.objects.order_by("name")),
        truncated=truncated,
        now=now,
    )
