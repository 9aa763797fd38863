"""What the dashboard and the Backups pages show at a glance: each job with its last run, the
runs that went wrong lately, the next runs of the schedules, and the space left on each remote.

Read-only queries, each a fixed number of SQL queries whatever the number of rows (the pages'
query budgets are tested), shared by ``xoweb/views.py`` (the dashboard) and ``backups/views``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from backups.choices import RunStatus
from backups.models import BackupJob, BackupRun, Remote, Schedule

#: Run statuses the dashboard lists as failures.
WENT_WRONG = [RunStatus.FAILED, RunStatus.PARTIAL, RunStatus.INTERRUPTED]


def jobs_with_last_run() -> QuerySet:
    """Jobs with their remotes, schedules and last run, in a fixed number of queries."""
    last = BackupRun.objects.filter(job=OuterRef("pk")).order_by("-created", "-pk")
    return (
        BackupJob.objects.select_related("pool")
        .prefetch_related("remotes", "schedules")
        .annotate(
            last_run_id=Subquery(last.values("pk")[:1]),
            last_run_status=Subquery(last.values("status")[:1]),
            last_run_created=Subquery(last.values("created")[:1]),
        )
        .order_by("name")
    )


def recent_failures(now: datetime | None = None, hours: int = 24, limit: int = 10) -> list:
    """Runs that failed, were partial or interrupted within ``hours``, newest first."""
    since = (now or timezone.now()) - timedelta(hours=hours)
    return list(
        BackupRun.objects.filter(status__in=WENT_WRONG, created__gte=since)
        .select_related("job", "schedule")
        .order_by("-created", "-pk")[:limit]
    )


@dataclass(frozen=True)
class NextRun:
    at: datetime
    schedule: Schedule


def next_runs(now: datetime | None = None, limit: int = 10) -> list[NextRun]:
    """The next moment of each enabled schedule, soonest first (one query)."""
    now = now or timezone.now()
    found = [
        NextRun(schedule.next_runs(now, 1)[0], schedule)
        for schedule in Schedule.objects.filter(enabled=True).select_related("job")
    ]
    return sorted(found, key=lambda item: item.at)[:limit]


def remotes_space() -> QuerySet:
    """Remotes with their last check and space (written by each check: before every run and
    on request)."""
    return Remote.objects.order_by("name")
