"""Models of the tasks app: the tree of long operations people watch, and their logs.

Rows are written by :mod:`tasks.reporter` in the process doing the work (a Celery worker, a
management command), read by the pages, the JSON endpoint and ``manage.py task_list``. Estimates
are not stored: they are computed when read (:mod:`tasks.presenters`, :mod:`tasks.estimates`).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from tasks.choices import LogLevel, TaskStatus, TaskUnit
from xoweb.links import validate_link


def _heartbeat_cutoff(now=None):
    now = now or timezone.now()
    return now - timedelta(seconds=settings.TASK_INTERRUPTED_AFTER_SECONDS)


class TaskQuerySet(models.QuerySet):
    def roots(self) -> TaskQuerySet:
        return self.filter(parent__isnull=True)

    def open(self) -> TaskQuerySet:
        """Pending or running, as the rows say (a dead process's tasks included until swept)."""
        return self.filter(status__in=TaskStatus.open())

    def alive(self, now=None) -> TaskQuerySet:
        """Pending, or running with a recent heartbeat: what the "running" filter shows."""
        return self.filter(
            Q(status=TaskStatus.PENDING)
            | Q(status=TaskStatus.RUNNING, updated__gte=_heartbeat_cutoff(now))
        )

    def running(self) -> TaskQuerySet:
        return self.filter(status=TaskStatus.RUNNING)

    def finished(self) -> TaskQuerySet:
        return self.filter(status__in=TaskStatus.final())

    def failed(self, now=None) -> TaskQuerySet:
        """Failed or interrupted, including running tasks whose process died (not yet swept)."""
        return self.filter(
            Q(status__in=[TaskStatus.FAILURE, TaskStatus.INTERRUPTED])
            | Q(status=TaskStatus.RUNNING, updated__lt=_heartbeat_cutoff(now))
        )

    def recent(self, hours: float = 24) -> TaskQuerySet:
        return self.filter(created__gte=timezone.now() - timedelta(hours=hours))

    def silent(self, now=None) -> TaskQuerySet:
        """Running tasks whose process sent no heartbeat within the interruption timeout."""
        return self.running().filter(updated__lt=_heartbeat_cutoff(now))

    def trees(self, root_ids) -> TaskQuerySet:
        """The roots ``root_ids`` and all their descendants."""
        return self.filter(Q(pk__in=root_ids) | Q(root_id__in=root_ids))


class Task(models.Model):
    """One long operation of xoweb (a backup run, a VM backup, a transfer, a merge…), a node of
    a tree: it has a parent unless it is a root, and ``root`` points at the top of its tree so
    that a whole tree loads in one query.

    ``done`` and ``total`` count ``unit`` (bytes for transfers); ``history`` keeps recent
    ``[unix_time, done]`` samples from which the rate and the time remaining are estimated.
    ``updated`` is the heartbeat of the process running the task: a running task whose
    heartbeat is older than ``TASK_INTERRUPTED_AFTER_SECONDS`` is interrupted.
    """

    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    root = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="descendants"
    )
    name = models.CharField(max_length=255)
    kind = models.CharField(
        max_length=40, blank=True, help_text="What sort of work: run, vm, snapshot, transfer…"
    )
    about_label = models.CharField("about", max_length=255, blank=True)
    about_url = models.CharField("link", max_length=500, blank=True, validators=[validate_link])
    pool = models.ForeignKey(
        "pools.Pool", null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )

    status = models.CharField(max_length=12, choices=TaskStatus.choices, default=TaskStatus.PENDING)
    unit = models.CharField(max_length=8, choices=TaskUnit.choices, default=TaskUnit.BYTES)
    done = models.FloatField(default=0.0)
    total = models.FloatField(null=True, blank=True)
    progress = models.FloatField(null=True, blank=True, help_text="0..1; null when unknown")
    history = models.JSONField(default=list, blank=True)

    created = models.DateTimeField(default=timezone.now)
    started = models.DateTimeField(null=True, blank=True)
    updated = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)

    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    cancellable = models.BooleanField(default=False)
    cancel_requested = models.BooleanField(default=False)
    host = models.CharField(max_length=255, blank=True, help_text="Where it runs: host:pid.")

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        permissions = [("cancel_task", "Can cancel a xoweb task")]
        indexes = [
            # The task page: roots, newest first, optionally by status or pool.
            models.Index(
                fields=["parent", "-created"],
                name="tasks_task_parent_created",
                condition=Q(parent__isnull=True),
            ),
            # The heartbeat sweep: running tasks whose heartbeat is old.
            models.Index(fields=["status", "updated"], name="tasks_task_status_updated"),
            # Pruning: finished roots that ended before the retention cut-off.
            models.Index(fields=["ended"], name="tasks_task_ended"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("tasks:task_detail", args=[self.pk])

    @property
    def is_final(self) -> bool:
        return self.status in TaskStatus.final()

    def is_silent(self, now=None) -> bool:
        """Running, yet its process has not sent a heartbeat in time: it died."""
        if self.status != TaskStatus.RUNNING:
            return False
        now = now or timezone.now()
        limit = timedelta(seconds=settings.TASK_INTERRUPTED_AFTER_SECONDS)
        return now - self.updated > limit

    def effective_status(self, now=None) -> str:
        """The status to show: a silent running task is shown interrupted before it is swept."""
        return TaskStatus.INTERRUPTED if self.is_silent(now) else self.status


class TaskLogEntry(models.Model):
    """One line of a task's log: an info, a warning or an error, with its time."""

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=8, choices=LogLevel.choices, default=LogLevel.INFO)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        verbose_name_plural = "task log entries"
        # The task detail page lists one task's log in time order: the FK index serves it.

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"
