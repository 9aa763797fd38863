"""What follows the end of a run, sent again when its message was lost: the mailed report and
the checks (verifications, restore tests), and the checks people asked for on the pages.

They are recorded in the database first (the report's ``reported_at`` still empty, the checks'
rows *pending*) and their Celery message is sent when that commits. A process that dies between
the commit and the send, or Redis restarted without its data, leaves them recorded with no
message: nothing would ever do them. The sweep of runs (:mod:`backups.services.sweep`) calls
:func:`resend`, which sends such a message again once it has waited ``lost`` — at most once per
``lost`` for each row, claimed by a conditional write of the row's ``heartbeat`` (an ended run
and a pending check have no other use for it), so two sweeps never send it twice. A message
delivered twice is harmless: the report and each check are claimed once.

Only what is younger than ``RESEND_WITHIN`` is looked at: a report is never mailed for an old
run because its job's report settings changed since.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q

from backups import tasks as celery_tasks
from backups.choices import CheckStatus, RunStatus
from backups.models import BackupRun, HealthCheck, Verification
from backups.services import reports

logger = logging.getLogger(__name__)

RESEND_WITHIN = timedelta(days=1)


def resend(now: datetime, lost: timedelta) -> int:
    """Send again the reports and the checks whose messages were lost; how many were sent."""
    return _reports(now, lost) + _checks(now, lost)


def _reports(now: datetime, lost: timedelta) -> int:
    waiting = BackupRun.objects.filter(
        status__in=RunStatus.final(),
        reported_at__isnull=True,
        ended__gt=now - RESEND_WITHIN,
        ended__lt=now - lost,
        heartbeat__lt=now - lost,
    ).select_related("job")
    sent = 0
    for run in waiting:
        if reports.wanted(run) and _claim_resend(BackupRun, run.pk, run.heartbeat, now):
            logger.warning("the report of run %s was never sent: sent again", run.pk)
            reports.queue(run.pk)
            sent += 1
    return sent


def _checks(now: datetime, lost: timedelta) -> int:
    """Checks after a run go again through ``check_run`` (verifications before restore tests),
    unless a check of that run is being done (the task is there, behind it); checks asked for on
    the pages go through their own task."""
    stale = Q(heartbeat__lt=now - lost) | Q(heartbeat__isnull=True, created__lt=now - lost)
    sent, runs = 0, set()
    for model, task in (
        (Verification, celery_tasks.verify),
        (HealthCheck, celery_tasks.health_check),
    ):
        waiting = model.objects.filter(
            stale, status=CheckStatus.PENDING, created__gt=now - RESEND_WITHIN
        )
        for row in waiting:
            if row.run_id is not None and _run_is_checking(row.run_id):
                continue
            if not _claim_resend(model, row.pk, row.heartbeat, now):
                continue
            logger.warning("%s waited without its message: sent again", row)
            if row.run_id is None:
                task.delay(row.pk)
                sent += 1
            else:
                runs.add(row.run_id)
    for run_id in sorted(runs):
        celery_tasks.check_run.delay(run_id)
    return sent + len(runs)


def _run_is_checking(run_id: int) -> bool:
    return any(
        model.objects.filter(run_id=run_id, status=CheckStatus.RUNNING).exists()
        for model in (Verification, HealthCheck)
    )


def _claim_resend(model, pk: int, heartbeat: datetime | None, now: datetime) -> bool:
    """The right to send this row's message again, once per period (a conditional write)."""
    return bool(model.objects.filter(pk=pk, heartbeat=heartbeat).update(heartbeat=now))
