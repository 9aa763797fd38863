"""The Backups entry page: remotes and their space, jobs and their last run, recent runs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import requires
from backups.models import BackupRun, Remote, RestorePoint
from backups.overview import jobs_with_last_run
from backups.views.summaries import with_disk_summaries

RECENT_RUNS = 15


@requires("backups.view_backupjob")
def backup_overview(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "backups/overview.html",
        {
            "remotes": Remote.objects.order_by("name"),
            "jobs": jobs_with_last_run(),
            "runs": with_disk_summaries(
                BackupRun.objects.select_related("job", "schedule")[:RECENT_RUNS]
            ),
            "point_count": RestorePoint.objects.count(),
        },
    )
