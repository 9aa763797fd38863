"""The reports and checks that follow a run, sent again by the sweep when their message was
lost (a process killed between the commit and the send, Redis restarted without its data):
once per period, only young ones, never a check of a run whose checks are under way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from backups import tasks as celery_tasks
from backups.choices import CheckStatus, RunStatus, Trigger
from backups.models import BackupRun, HealthCheck, Verification
from backups.services import followups, sweep

pytestmark = pytest.mark.django_db

LOST = sweep.lost_after()


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, int]]:
    """The messages sent, by task name and argument (the broker is not what is tested here)."""
    calls: list[tuple[str, int]] = []
    for task in (celery_tasks.check_run, celery_tasks.verify, celery_tasks.health_check):
        monkeypatch.setattr(task, "delay", lambda pk, name=task.name: calls.append((name, pk)))
    monkeypatch.setattr(
        celery_tasks.send_run_report,
        "apply_async",
        lambda args, **options: calls.append((celery_tasks.send_run_report.name, args[0])),
    )
    return calls


def ended(job, *, ago: timedelta, **fields) -> BackupRun:
    moment = timezone.now() - ago
    run = BackupRun.objects.create(
        job=job, trigger=Trigger.SCHEDULE, status=RunStatus.FAILED, message="1 VM(s): 1 failed",
        **fields,
    )  # fmt: skip
    BackupRun.objects.filter(pk=run.pk).update(started=moment, ended=moment, heartbeat=moment)
    return BackupRun.objects.get(pk=run.pk)


def pending_check(model, remote, *, ago: timedelta, run=None):
    fields = {"trigger": "schedule", "remote": remote, "run": run}
    if model is HealthCheck:
        fields.update(backup_path="xo-vm-backups/a/1.json", vm_uuid="a", sr_uuid="sr", timeout=60)
    row = model.objects.create(**fields)
    model.objects.filter(pk=row.pk).update(created=timezone.now() - ago)
    return row


def test_a_report_whose_message_was_lost_is_sent_again_once_per_period(
    make_job, sent, django_capture_on_commit_callbacks
) -> None:
    job = make_job("nightly", report_when="failure", report_to=["ops@example.com"])
    lost = ended(job, ago=LOST + timedelta(minutes=1))
    young = ended(job, ago=LOST - timedelta(minutes=1))  # its message may still be on its way
    ended(job, ago=timedelta(days=2))  # too old: never mailed late
    ended(job, ago=LOST * 2, reported_at=timezone.now())  # sent already
    quiet = make_job("quiet", report_when="never")
    ended(quiet, ago=LOST * 2)

    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert followups.resend(now, LOST) == 1
    assert sent == [("backups.send_run_report", lost.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        assert followups.resend(now + timedelta(seconds=30), LOST) == 0, "once per period"
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert followups.resend(now + LOST + timedelta(seconds=1), LOST) == 2
    assert sorted(pk for _name, pk in sent) == sorted([lost.pk, young.pk]), "lost again, lost now"


def test_checks_waiting_without_their_message_go_again_through_their_task(
    make_job, make_remote, sent
) -> None:
    nas = make_remote("nas")
    job = make_job("nightly", remotes=[nas])
    run = ended(job, ago=LOST * 2)
    verification = pending_check(Verification, nas, ago=LOST * 2, run=run)
    test = pending_check(HealthCheck, nas, ago=LOST * 2, run=run)
    asked = pending_check(Verification, nas, ago=LOST * 2)  # from the remote page's button
    pending_check(HealthCheck, nas, ago=LOST / 2)  # still young

    busy_run = ended(job, ago=LOST * 2)
    pending_check(HealthCheck, nas, ago=LOST * 2, run=busy_run)
    doing = pending_check(Verification, nas, ago=LOST * 2, run=busy_run)
    Verification.objects.filter(pk=doing.pk).update(status=CheckStatus.RUNNING)

    now = timezone.now()
    assert followups.resend(now, LOST) == 2
    assert sorted(sent) == [("backups.tasks.check_run", run.pk), ("backups.tasks.verify", asked.pk)]
    for row in (verification, test, asked):
        row.refresh_from_db()
        assert row.status == "pending" and row.heartbeat == now, "the resend is claimed"
    sent.clear()
    assert followups.resend(now + timedelta(seconds=30), LOST) == 0
    assert sent == [], "never the restore test of a run whose verification is under way"
