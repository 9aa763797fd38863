"""Signals of the backups app: a schedule's beat entry follows every save and delete of the
schedule or of its job, whoever makes it (a page, the admin's bulk edits, a command, the shell).
The rule itself lives in ``backups/scheduling.py``."""

from __future__ import annotations

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from backups import scheduling
from backups.models import BackupJob, Schedule


@receiver(post_save, sender=Schedule, dispatch_uid="backups.schedule_saved")
def schedule_saved(sender, instance: Schedule, raw: bool = False, **kwargs) -> None:
    if not raw:  # loaddata: the fixture brings its own periodic tasks
        scheduling.sync(instance)


@receiver(post_delete, sender=Schedule, dispatch_uid="backups.schedule_deleted")
def schedule_deleted(sender, instance: Schedule, **kwargs) -> None:
    scheduling.forget(instance)


@receiver(post_save, sender=BackupJob, dispatch_uid="backups.job_saved")
def job_saved(sender, instance: BackupJob, created: bool, raw: bool = False, **kwargs) -> None:
    if not created and not raw:  # a renamed job renames its schedules' entries
        scheduling.sync_job(instance)


def sync_after_migrate(sender, **kwargs) -> None:
    """After ``migrate``: every schedule has its entry (an upgrade from before beat fired
    schedules, or entries edited by hand); connected in ``BackupsConfig.ready``."""
    scheduling.sync_all()
