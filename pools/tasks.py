"""Celery tasks of the pools app: thin wrappers around :mod:`pools.services`.

They are short tasks (the project's default delivery policy: acknowledged when they start, a
time limit of ``XOWEB_TASK_TIME_LIMIT`` seconds; see ``xoweb/delivery.py``).
"""

from __future__ import annotations

import logging

from celery import shared_task

from pools import services
from pools.models import XapiTask

logger = logging.getLogger(__name__)


@shared_task(name="pools.cancel_xapi_task")
def cancel_xapi_task(xapi_task_id: int) -> str:
    """Ask the pool to cancel one of its XAPI tasks (the web process never waits on XAPI)."""
    xapi_task = XapiTask.objects.filter(pk=xapi_task_id).select_related("pool").first()
    if xapi_task is None:
        return f"XAPI task {xapi_task_id} is gone: nothing to cancel"
    services.cancel_xapi_task(xapi_task)
    logger.info("asked pool %s to cancel XAPI task %s", xapi_task.pool, xapi_task.ref)
    return f"cancel requested for {xapi_task.name_label or xapi_task.ref}"
