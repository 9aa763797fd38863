"""Pages about the task tree: the live list, a task's detail with its log, cancel, and JSON.

The list and detail pages poll themselves with htmx (``hx-trigger="every 2s"``): an htmx
request gets only the fragment that changes. The web process never waits on XAPI: cancelling
an XAPI task enqueues a Celery task.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.access import is_htmx, requires
from pools.liveness import current_watch
from pools.models import XapiTask
from pools.tasks import cancel_xapi_task
from tasks import services
from tasks.listing import MAX_TREE_ROWS, STATUS_FILTERS, BadFilter, TaskFilters, task_page
from tasks.models import Task
from tasks.presenters import build_tree, xapi_view
from xoweb.errors import bad_request_response
from xoweb.params import BadParameter, parse_page

POLL_SECONDS = 2


def _back(request: HttpRequest, default: str) -> HttpResponse:
    """Back to the page the form was on (only a page of this site)."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = default
    return redirect(target)


@requires("tasks.view_task")
def task_list(request: HttpRequest) -> HttpResponse:
    try:
        filters = TaskFilters.from_params(request.GET)
        page_number = parse_page(request.GET.get("page"))
    except (BadFilter, BadParameter) as error:
        return bad_request_response(request, str(error))
    listing = task_page(filters, page_number)
    context = {
        "listing": listing,
        "status_filters": STATUS_FILTERS,
        "poll_seconds": POLL_SECONDS,
    }
    template = "tasks/_task_table.html" if is_htmx(request) else "tasks/task_list.html"
    return render(request, template, context)


@requires("tasks.view_task", json=True)
def task_list_json(request: HttpRequest) -> JsonResponse:
    """The same data as the page: one page of task trees and the XAPI tasks, as JSON."""
    try:
        filters = TaskFilters.from_params(request.GET)
        page_number = parse_page(request.GET.get("page"))
    except (BadFilter, BadParameter) as error:
        return JsonResponse({"error": str(error)}, status=400)
    listing = task_page(filters, page_number)
    return JsonResponse(
        {
            "now": listing.now.isoformat(),
            "page": listing.page.number,
            "pages": listing.page.paginator.num_pages,
            "truncated": listing.truncated,
            "tasks": [view.as_json() for view in listing.tasks],
            "xapi_tasks": [view.as_json(with_children=False) for view in listing.xapi_tasks],
        }
    )


def _task_view(task: Task):
    """The view of ``task`` within its tree (bounded: a huge tree falls back to the task and
    its children, which is all the detail page shows)."""
    tree = Task.objects.trees([task.root_id or task.pk]).select_related("pool").order_by("pk")
    rows = list(tree[: MAX_TREE_ROWS + 1])
    if len(rows) > MAX_TREE_ROWS:
        rows = list(
            Task.objects.filter(Q(pk=task.pk) | Q(parent_id=task.pk))
            .select_related("pool")
            .order_by("pk")[:MAX_TREE_ROWS]
        )
    for top in build_tree(rows):
        for view in top.walk():
            if view.id == task.pk:
                return view
    raise Http404(f"task {task.pk} is not in its tree")


@requires("tasks.view_task")
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(Task.objects.select_related("parent"), pk=pk)
    context = {
        "task": task,
        "view": _task_view(task),
        "log": task.log.all()[:500],
        "poll_seconds": POLL_SECONDS,
    }
    template = "tasks/_task_detail_body.html" if is_htmx(request) else "tasks/task_detail.html"
    return render(request, template, context)


@requires("tasks.view_task", json=True)
def task_detail_json(request: HttpRequest, pk: int) -> JsonResponse:
    task = get_object_or_404(Task, pk=pk)
    data = _task_view(task).as_json()
    data["log"] = [
        {"at": entry.at.isoformat(), "level": entry.level, "message": entry.message}
        for entry in task.log.all()[:500]
    ]
    return JsonResponse(data)


@requires("tasks.cancel_task", methods=["POST"])
def task_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(Task, pk=pk)
    if services.request_cancel(task):
        messages.info(request, f"Cancel requested for task {task.name}.")
    else:
        messages.error(
            request,
            f"Task {task.name} cannot be cancelled: it is "
            f"{task.get_status_display().lower()}"
            + ("" if task.cancellable else " and its work does not support cancelling")
            + ".",
        )
    return _back(request, task.get_absolute_url())


@requires("pools.view_xapitask")
def xapi_task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    xapi_task = get_object_or_404(XapiTask.objects.select_related("pool"), pk=pk)
    context = {
        "xapi_task": xapi_task,
        "view": xapi_view(xapi_task, current_watch()),
        "poll_seconds": POLL_SECONDS,
    }
    template = "tasks/_xapi_task_body.html" if is_htmx(request) else "tasks/xapi_task_detail.html"
    return render(request, template, context)


@requires("pools.cancel_xapitask", methods=["POST"])
def xapi_task_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    xapi_task = get_object_or_404(XapiTask.objects.select_related("pool"), pk=pk)
    view = xapi_view(xapi_task, current_watch())
    if not view.cancellable:
        messages.error(
            request,
            f"XAPI task {view.name} cannot be cancelled: "
            + (view.detail or f"XAPI does not allow it ({view.status})")
            + ".",
        )
    else:
        transaction.on_commit(lambda: cancel_xapi_task.delay(xapi_task.pk))
        messages.info(request, f"Cancel requested for XAPI task {view.name} on {view.source}.")
    return _back(request, view.url)
