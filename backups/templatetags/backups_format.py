"""Template filters of the backups pages."""

from __future__ import annotations

from datetime import timedelta

from django import template

from backups.choices import STATUS_CSS
from tasks import formatting

register = template.Library()


@register.filter
def status_css(status: str | None) -> str:
    """The badge class of a run or VM status (``ok``, ``warn``, ``bad`` or "")."""
    return STATUS_CSS.get(status or "", "")


@register.filter
def elapsed(span: timedelta | None) -> str:
    """A run's or a check's duration as people read it (``3 min 05 s``); "" when unknown."""
    return formatting.duration(span.total_seconds()) if span is not None else ""
