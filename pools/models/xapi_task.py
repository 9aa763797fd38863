"""The cached XAPI tasks of a pool: the async operations it runs, with their progress history
(the tasks app's pages and time estimates read them)."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from pools.choices import XapiTaskStatus
from pools.models.cached_object import (
    CachedObject,
    CachedObjectQuerySet,
    _cache_meta,
    _datetime,
    _ref,
)


class XapiTaskQuerySet(CachedObjectQuerySet):
    def running(self) -> XapiTaskQuerySet:
        """Pending or cancelling: XAPI is still working on them (as the cache last saw it)."""
        return self.filter(status__in=[XapiTaskStatus.PENDING, XapiTaskStatus.CANCELLING])


class XapiTask(CachedObject):
    """One XAPI task of a pool (an async operation running on, or finished by, the pool).

    ``progress_history`` holds ``[unix_time, progress]`` samples appended by the watcher each
    time the progress changes, bounded to the last ``PROGRESS_HISTORY_LENGTH``; the tasks app
    estimates the time remaining from it.
    """

    PROGRESS_HISTORY_LENGTH = 120

    xapi_class = "task"
    name_description = models.TextField(blank=True)
    status = models.CharField(
        max_length=16, choices=XapiTaskStatus.choices, default=XapiTaskStatus.PENDING
    )
    progress = models.FloatField(default=0.0)
    created = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    error_info = models.JSONField(default=list)
    allowed_operations = models.JSONField(default=list)
    resident_on_ref = models.CharField(max_length=64, blank=True)
    subtask_of_ref = models.CharField(max_length=64, blank=True)
    progress_history = models.JSONField(default=list)

    objects = XapiTaskQuerySet.as_manager()

    Meta = _cache_meta(
        "xapitask",
        verbose_name="XAPI task",
        extra_indexes=(
            # The task list: running tasks first, newest first.
            models.Index(fields=["status", "-created"], name="pools_xapitask_status_created"),
        ),
        permissions=(("cancel_xapitask", "Can cancel a XAPI task of a pool"),),
    )

    def get_absolute_url(self) -> str:
        return reverse("tasks:xapi_task_detail", args=[self.pk])

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        try:
            progress = min(1.0, max(0.0, float(record.get("progress", 0.0))))
        except (TypeError, ValueError):
            progress = 0.0
        return {
            **super().columns_from_record(record),
            "name_description": record.get("name_description", ""),
            "status": record.get("status", XapiTaskStatus.PENDING),
            "progress": progress,
            "created": _datetime(record.get("created")),
            "finished": _datetime(record.get("finished")),
            "error_info": list(record.get("error_info", [])),
            "allowed_operations": list(record.get("allowed_operations", [])),
            "resident_on_ref": _ref(record, "resident_on"),
            "subtask_of_ref": _ref(record, "subtask_of"),
        }

    @property
    def is_running(self) -> bool:
        return self.status in (XapiTaskStatus.PENDING, XapiTaskStatus.CANCELLING)
