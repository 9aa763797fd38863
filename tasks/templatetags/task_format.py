"""Template filters of the task pages (they call :mod:`tasks.formatting`)."""

from __future__ import annotations

from datetime import UTC, datetime

from django import template
from django.utils import timezone

from tasks import formatting

register = template.Library()


@register.filter
def duration(seconds: float | None) -> str:
    return formatting.duration(seconds)


@register.filter
def task_rate(view) -> str:
    return formatting.rate(view.estimate.rate, view.unit)


@register.filter
def size(count: float | None) -> str:
    return formatting.size(count)


@register.filter
def eta(moment: float | None) -> datetime | None:
    """A unix time as an aware datetime in the current time zone, for the ``date`` filter."""
    if moment is None:
        return None
    return timezone.localtime(datetime.fromtimestamp(moment, tz=UTC))


@register.filter
def ancestors(view) -> str:
    return " ".join(str(pk) for pk in view.ancestors)
