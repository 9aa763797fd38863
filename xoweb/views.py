"""The dashboard: the state of the pools and of the work, at a glance."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from pools.models import Pool
from pools.views import watcher_state
from tasks.models import Task


def dashboard(request: HttpRequest) -> HttpResponse:
    roots = Task.objects.roots()
    return render(
        request,
        "dashboard.html",
        {
            "pools": Pool.objects.with_counts(),
            "running_count": roots.alive().count(),
            "failed_count": roots.recent(24).failed().count(),
            **watcher_state(),
        },
    )
