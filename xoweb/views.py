"""The dashboard: the state of the pools and of the work, at a glance, refreshed in place."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.generic import RedirectView

from pools.liveness import current_watch
from pools.models import Pool, XapiTask
from tasks.models import Task

#: Seconds between two refreshes of the dashboard's fragment (like the task page).
POLL_SECONDS = 2


def dashboard(request: HttpRequest) -> HttpResponse:
    """The pools with their liveness, and counts of running and failed work.

    An htmx poll (``HX-Request``) gets only the fragment that changes.
    """
    roots = Task.objects.roots()
    context = {
        "pools": Pool.objects.with_counts(),
        "running_count": roots.alive().count(),
        "failed_count": roots.recent(24).failed().count(),
        "running_xapi_count": XapiTask.objects.running().live().count(),
        "watch": current_watch(),
        "poll_seconds": POLL_SECONDS,
    }
    if request.headers.get("HX-Request") == "true":
        return render(request, "_dashboard_body.html", context)
    return render(request, "dashboard.html", context)


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says: send them to the static icon."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("xoweb/favicon.svg")
