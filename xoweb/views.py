"""The dashboard (the state of the pools and of the work, at a glance) and the health check."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from accounts.access import public, requires
from pools.models import Pool
from pools.views import watcher_state
from tasks.models import Task


@requires()
def dashboard(request: HttpRequest) -> HttpResponse:
    """Any logged-in user lands here; each part shows only to those who may read it."""
    context = {}
    if request.user.has_perm("pools.view_pool"):
        context.update(pools=Pool.objects.with_counts(), **watcher_state())
    if request.user.has_perm("tasks.view_task"):
        roots = Task.objects.roots()
        context.update(
            running_count=roots.alive().count(),
            failed_count=roots.recent(24).failed().count(),
        )
    return render(request, "dashboard.html", context)


@public
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """For a load balancer or a monitor: 200 while the database answers, 503 when not.
    Open without a login, so it says nothing but that."""
    try:
        connection.ensure_connection()
    except DatabaseError:
        return JsonResponse({"status": "database unreachable"}, status=503)
    return JsonResponse({"status": "ok"})
