"""Choices of the tasks app."""

from __future__ import annotations

from django.db import models


class TaskStatus(models.TextChoices):
    """Where a task stands. The last four are final."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"
    CANCELLED = "cancelled", "Cancelled"
    INTERRUPTED = "interrupted", "Interrupted"

    @classmethod
    def open(cls) -> list[str]:
        return [cls.PENDING, cls.RUNNING]

    @classmethod
    def final(cls) -> list[str]:
        return [cls.SUCCESS, cls.FAILURE, cls.CANCELLED, cls.INTERRUPTED]


class TaskUnit(models.TextChoices):
    """What ``done`` and ``total`` count."""

    BYTES = "bytes", "Bytes"
    ITEMS = "items", "Items"
    RATIO = "ratio", "Ratio (only a progress fraction is known)"


class LogLevel(models.TextChoices):
    """Level of a line of a task's log."""

    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"
