"""Celery tasks of the tasks app: thin wrappers around :mod:`tasks.services` (short tasks)."""

from __future__ import annotations

from celery import shared_task

from tasks import services


@shared_task(name="tasks.mark_interrupted")
def mark_interrupted() -> int:
    """Periodic: running tasks whose process died become interrupted."""
    return services.mark_interrupted()


@shared_task(name="tasks.prune_finished")
def prune_finished() -> int:
    """Periodic: delete finished task trees older than ``TASK_RETENTION_DAYS``."""
    return services.prune_finished()
