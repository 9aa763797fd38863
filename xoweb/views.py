"""The dashboard (the state of the pools and of the work, at a glance, refreshed in place), the
health check and the favicon."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.templatetags.static import static
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView

from accounts.access import is_htmx, public, requires
from backups import overview as backups_overview
from backups.models import BackupRun
from backups.services import outlook
from backups.views.summaries import with_disk_summaries
from pools.liveness import current_watch
from pools.models import Pool, XapiTask
from tasks.models import Task

#: Seconds between two refreshes of the dashboard's fragment (like the task page).
POLL_SECONDS = 2
#: Backup runs shown (newest first), with per run its disks' modes and the reasons of fulls.
RECENT_RUNS = 8


@requires()
def dashboard(request: HttpRequest) -> HttpResponse:
    """The pools with their liveness, counts of running and failed work, and the backups: the
    last run of each job, the runs that went wrong, the next runs and the space on the remotes.

    Any logged-in user lands here; each part is shown only to those who may read it. An htmx
    poll (``HX-Request``) gets only the fragment that changes.
    """
    user = request.user
    context = {"watch": current_watch(), "poll_seconds": POLL_SECONDS}
    if user.has_perm("pools.view_pool"):
        context["pools"] = Pool.objects.with_counts()
    if user.has_perm("pools.view_xapitask"):
        context["running_xapi_count"] = XapiTask.objects.running().live().count()
    if user.has_perm("tasks.view_task"):
        roots = Task.objects.roots()
        context["running_count"] = roots.alive().count()
        context["failed_count"] = roots.recent(24).failed().count()
    if user.has_perm("backups.view_backupjob"):
        context["backup_jobs"] = backups_overview.jobs_with_last_run()
        context["backup_failures"] = backups_overview.recent_failures()
        context["backup_next_runs"] = backups_overview.next_runs()
    if user.has_perm("backups.view_backuprun"):
        context["recent_runs"] = with_disk_summaries(
            BackupRun.objects.select_related("job", "schedule")[:RECENT_RUNS]
        )
    if user.has_perm("backups.view_remote"):
        context["backup_remotes"] = backups_overview.remotes_space()
        context["filling_soon"] = outlook.filling_soon()
        context["outlook_warn_days"] = settings.OUTLOOK_WARN_DAYS
    if is_htmx(request):
        return render(request, "_dashboard_body.html", context)
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


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico whatever the page says: send them to the static icon."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("xoweb/favicon.svg")
