"""Schedules ⇄ django-celery-beat: every enabled ``Schedule`` is one ``PeriodicTask`` that beat
fires with a crontab in the schedule's time zone.

This module is the one home of that rule. :func:`sync` makes a schedule's entry match it
(created, changed, disabled with it); :func:`forget` deletes the entry of a deleted schedule.
Signals call them whenever a schedule or a job is saved or deleted, whoever saves it: the job
page, the admin (bulk edits and deletes too), ``schedule_add``, the shell (``backups/signals.py``).
Changes that bypass signals (``QuerySet.update()``, a hand edit of the periodic tasks) are
drift: :func:`drift` lists it and ``manage.py schedule_sync [--check]`` repairs or reports it.

An entry runs ``backups.tasks.run_schedule(schedule_id=…)``; beat (``xoweb/beat.py``) adds the
moment it fired, so that one moment of a schedule makes one run even when beat or the broker
deliver it twice (``BackupRun.scheduled_for`` is unique per schedule).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from backups import cron
from backups.models import BackupJob, Schedule

#: The Celery task an entry runs (``backups/tasks.py``).
RUN_SCHEDULE = "backups.tasks.run_schedule"
#: Entries of backup schedules are named with this prefix in the admin's periodic tasks.
NAME_PREFIX = "backup: "


def entry_name(schedule: Schedule) -> str:
    """The entry's name, unique like the schedule (job names are unique, and schedule names
    within a job); the schedule's uuid keeps it unique once cut to the column's length."""
    label = f"{schedule.job.name} / {schedule.name}"
    return f"{NAME_PREFIX}{label[:170]} ({str(schedule.uuid)[:8]})"


def shown_name(schedule: Schedule) -> str:
    """What Flower and the workers' logs call a firing of this schedule."""
    return f"schedule {schedule.name} of job {schedule.job.name}"


def wanted(schedule: Schedule) -> dict:
    """The columns the schedule's entry must have (its crontab apart)."""
    return {
        "name": entry_name(schedule),
        "task": RUN_SCHEDULE,
        "args": "[]",
        "kwargs": json.dumps({"schedule_id": schedule.pk}),
        "headers": json.dumps({"shadow": shown_name(schedule)}),
        "enabled": bool(schedule.enabled),
        "one_off": False,
        "description": f"Fires schedule {schedule.name} of backup job {schedule.job.name}. "
        "Kept in step with the schedule by xoweb: edit the schedule, not this entry.",
    }


def crontab_of(schedule: Schedule) -> CrontabSchedule:
    """The shared crontab row of the schedule's cron and time zone."""
    fields = dict(zip(cron.FIELDS, schedule.cron.split(), strict=True))
    crontab, _ = CrontabSchedule.objects.get_or_create(timezone=schedule.timezone, **fields)
    return crontab


def _differences(entry: PeriodicTask, schedule: Schedule) -> list[str]:
    """What differs between an entry and what its schedule wants ("" when in step)."""
    found = []
    for column, value in wanted(schedule).items():
        current = getattr(entry, column)
        if column in ("kwargs", "headers", "args"):  # JSON text: compared as values
            current, value = json.loads(current or "null"), json.loads(value)
        if current != value:
            found.append(column)
    crontab = entry.crontab
    expected = dict(zip(cron.FIELDS, schedule.cron.split(), strict=True))
    if (
        crontab is None
        or entry.interval_id
        or any(getattr(crontab, name) != value for name, value in expected.items())
        or str(crontab.timezone) != schedule.timezone
    ):
        found.append("crontab")
    return found


@transaction.atomic
def sync(schedule: Schedule) -> PeriodicTask:
    """Make the schedule's entry match it; returns the entry.

    Steps: find the entry (by the schedule's link; else one left with its name); create it or
    update what differs; when the cron or the time zone changed, count the schedule as run now
    (or beat would fire at once a moment of the new cron that fell between the last run and
    now); link it to the schedule. Runs in the transaction of the schedule's save, so that the
    two change together or not at all.
    """
    schedule = Schedule.objects.select_related("job", "periodic_task__crontab").get(pk=schedule.pk)
    entry = schedule.periodic_task
    if entry is None:
        entry = PeriodicTask.objects.filter(name=entry_name(schedule)).first()
    if entry is None:
        entry = PeriodicTask(crontab=crontab_of(schedule), last_run_at=timezone.now())
        for column, value in wanted(schedule).items():
            setattr(entry, column, value)
        entry.save()
    else:
        changed = _differences(entry, schedule)
        if changed:
            for column, value in wanted(schedule).items():
                setattr(entry, column, value)
            if "crontab" in changed:
                entry.crontab, entry.interval = crontab_of(schedule), None
                entry.solar = entry.clocked = None
                entry.last_run_at = timezone.now()
            entry.save()
    if schedule.periodic_task_id != entry.pk:
        Schedule.objects.filter(pk=schedule.pk).update(periodic_task=entry)
    return entry


def forget(schedule: Schedule) -> None:
    """Delete the entry of a schedule that is being deleted."""
    entries = PeriodicTask.objects.filter(task=RUN_SCHEDULE)
    if schedule.periodic_task_id:
        entries = entries.filter(pk=schedule.periodic_task_id)
    else:
        entries = entries.filter(kwargs=json.dumps({"schedule_id": schedule.pk}))
    for entry in entries:
        entry.delete()  # one by one: PeriodicTask.delete() tells beat that entries changed


def sync_job(job: BackupJob) -> None:
    """Re-sync every schedule of a job (its name is in their entries' names)."""
    for schedule in job.schedules.all():
        sync(schedule)


@dataclass
class Drift:
    """Where the entries and the schedules disagree (all empty: in step)."""

    missing: list[str] = field(default_factory=list)  # schedules without an entry
    different: dict[str, list[str]] = field(default_factory=dict)  # schedule → columns
    orphans: list[str] = field(default_factory=list)  # entries of no schedule

    def __bool__(self) -> bool:
        return bool(self.missing or self.different or self.orphans)

    def lines(self) -> list[str]:
        found = [f"schedule {name}: no periodic task" for name in self.missing]
        found += [
            f"schedule {name}: its periodic task differs in {', '.join(columns)}"
            for name, columns in self.different.items()
        ]
        found += [f"periodic task {name!r} fires no existing schedule" for name in self.orphans]
        return found


def drift() -> Drift:
    """Compare every schedule with its entry, and every backup entry with its schedule."""
    found = Drift()
    schedules = list(Schedule.objects.select_related("job", "periodic_task__crontab"))
    linked = set()
    for schedule in schedules:
        label = f"{schedule.job.name} / {schedule.name}"
        entry = schedule.periodic_task
        if entry is None:
            found.missing.append(label)
            continue
        linked.add(entry.pk)
        changed = _differences(entry, schedule)
        if changed:
            found.different[label] = changed
    for entry in PeriodicTask.objects.filter(task=RUN_SCHEDULE).exclude(pk__in=linked):
        found.orphans.append(entry.name)
    return found


def sync_all() -> Drift:
    """Repair every drift (what :func:`drift` found is returned, now fixed)."""
    found = drift()
    for schedule in Schedule.objects.all():
        sync(schedule)
    linked = Schedule.objects.exclude(periodic_task=None).values_list("periodic_task", flat=True)
    for entry in PeriodicTask.objects.filter(task=RUN_SCHEDULE).exclude(pk__in=list(linked)):
        entry.delete()
    return found
