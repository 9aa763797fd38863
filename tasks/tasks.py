"""Celery tasks of the tasks app: thin wrappers around :mod:`tasks.services`."""

from __future__ import annotations

import logging
import time

from celery import shared_task

from tasks import services
from tasks.reporter import task

logger = logging.getLogger(__name__)


@shared_task(name="tasks.mark_interrupted")
def mark_interrupted() -> int:
    """Periodic: running tasks whose process died become interrupted."""
    return services.mark_interrupted()


@shared_task(name="tasks.prune_finished")
def prune_finished() -> int:
    """Periodic: delete finished task trees older than ``TASK_RETENTION_DAYS``."""
    return services.prune_finished()


@shared_task(name="tasks.cancel_xapi_task")
def cancel_xapi_task(xapi_task_id: int) -> str:
    """Ask the pool to cancel one of its XAPI tasks (the web process never waits on XAPI)."""
    from pools.models import XapiTask
    from pools.services import cancel_xapi_task as cancel

    xapi_task = XapiTask.objects.filter(pk=xapi_task_id).select_related("pool").first()
    if xapi_task is None:
        return f"XAPI task {xapi_task_id} is gone: nothing to cancel"
    cancel(xapi_task)
    logger.info("asked pool %s to cancel XAPI task %s", xapi_task.pool, xapi_task.ref)
    return f"cancel requested for {xapi_task.name_label or xapi_task.ref}"


@shared_task(name="tasks.demo_transfer")
def demo_transfer(name: str, total: int, seconds: float, *, steps: int = 100) -> int:
    """A transfer that reports its progress as real work does: for demos and end-to-end tests.

    It advances ``total`` units in ``steps`` equal blocks over ``seconds``; cancellable.
    """
    with task(name, kind="transfer", total=total, cancellable=True) as transfer:
        block = total / steps
        for _ in range(steps):
            time.sleep(seconds / steps)
            transfer.advance(block)
        transfer.info(f"{total} units transferred in {seconds} s")
        return transfer.id
