"""Rows → the engine's values, and the engine's names in one place.

Every import of ``backups.engine`` made by the Django side goes through this module, so that
the contract (the values of ``backups/engine/values.py``) is met in one file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backups.models import BackupJob, Remote, Schedule


def remote_adapter(remote: Remote) -> Any:
    """The engine's adapter on ``remote``'s folder: the only code that touches its files."""
    from backups.engine.remote import RemoteAdapter

    return RemoteAdapter(Path(remote.path), remote_id=str(remote.uuid), name=remote.name)


def job_settings(job: BackupJob) -> Any:
    """The job's settings, saved or not (an unsaved job, on its form, has no schedules yet)."""
    from backups.engine.values import JobSettings

    return JobSettings(
        id=str(job.uuid),
        name=job.name,
        mode=job.mode,
        full_interval=job.full_interval,
        max_chain_length=job.max_chain_length,
        concurrency=job.concurrency,
        vm_timeout=float(job.vm_timeout),
        # Every schedule's snapshot retention, so that the snapshots of a schedule that has
        # not run since are pruned too.
        snapshot_retention_by_schedule={
            str(schedule.uuid): schedule.snapshot_retention
            for schedule in (job.schedules.all() if job.pk else [])
        },
    )


def schedule_settings(job: BackupJob, schedule: Schedule | None, *, force_full: bool) -> Any:
    """The schedule's settings; a run without a schedule ("run now") gets a stand-in that keeps
    nothing on the pool beyond the next base, under the id of the job's "manual" schedule."""
    from backups.engine.values import ScheduleSettings

    if schedule is None:
        # retention=0: the backups of runs no schedule fired are kept until someone deletes them.
        return ScheduleSettings(
            id=manual_schedule_id(job), name="run now", force_full=force_full, retention=0
        )
    return ScheduleSettings(
        id=str(schedule.uuid),
        name=schedule.name,
        force_full=schedule.force_full or force_full,
        retention=schedule.retention,
        snapshot_retention=schedule.snapshot_retention,
        daily=schedule.retention_daily,
        weekly=schedule.retention_weekly,
        monthly=schedule.retention_monthly,
        yearly=schedule.retention_yearly,
        timezone=schedule.timezone,
    )


def manual_schedule_id(job: BackupJob) -> str:
    """A stable id for the runs of a job that no schedule fired (derived from the job's)."""
    import uuid

    return str(uuid.uuid5(job.uuid, "xoweb:manual"))


def backup_vm(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.vm_backup import backup_vm as run

    return run(*args, **kwargs)


def restore_disk_to_sr(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.restore import restore_disk_to_sr as run

    return run(*args, **kwargs)


def restore_disk_to_file(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.restore import restore_disk_to_file as run

    return run(*args, **kwargs)


def restore_vm(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.vm_restore import restore_vm as run

    return run(*args, **kwargs)


def engine_errors() -> Any:
    """The engine's errors module (EngineError, RemoteError, LockHeld, ChainUnhealthy…)."""
    from backups.engine import errors

    return errors


def plan_calendar(*args: Any, **kwargs: Any) -> Any:
    """The engine's calendar of a job's next runs (``backups.engine.calendar``)."""
    from backups.engine.calendar import plan_calendar as plan

    return plan(*args, **kwargs)


def planner() -> Any:
    """The engine's planner module (its facts and plans: DiskFacts, BaseSnapshot…)."""
    from backups.engine import planner as module

    return module


def upcoming_run(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.calendar import UpcomingRun

    return UpcomingRun(*args, **kwargs)


def vhd_path(*args: Any) -> str:
    from backups.engine.layout import vhd_path as path

    return path(*args)


def restore_check() -> Any:
    """The engine's comparison of a restored disk with its backup (``restore_check``)."""
    from backups.engine import restore_check as module

    return module


def retention_rule(job: BackupJob, schedule: Schedule) -> Any:
    """A schedule's retention as the engine applies it."""
    from backups.engine.prune import ScheduleRetention

    policy = schedule_settings(job, schedule, force_full=False).policy
    return ScheduleRetention(str(job.uuid), str(schedule.uuid), policy, schedule.name)


def maintain_vm(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.maintenance import maintain_vm as run

    return run(*args, **kwargs)


def verify_remote(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.verify import verify_remote as run

    return run(*args, **kwargs)


def prune_decisions(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.prune import decisions

    return decisions(*args, **kwargs)


def disk_chains(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.inventory import disk_chains as read

    return read(*args, **kwargs)


def health_check(*args: Any, **kwargs: Any) -> Any:
    from backups.engine.health_check import health_check as run

    return run(*args, **kwargs)


def health_check_leftovers() -> Any:
    """The engine's ``find_leftovers`` and ``destroy_leftover`` (restore tests' marked objects)."""
    from backups.engine import health_check

    return health_check.find_leftovers, health_check.destroy_leftover


def health_check_tag() -> str:
    """The tag a restore test's VM carries (no backup job's rule selects it)."""
    from backups.engine.health_check import TAG

    return TAG
