"""Template filters of the backups pages."""

from __future__ import annotations

from django import template

from backups.choices import STATUS_CSS

register = template.Library()


@register.filter
def status_css(status: str | None) -> str:
    """The badge class of a run or VM status (``ok``, ``warn``, ``bad`` or "")."""
    return STATUS_CSS.get(status or "", "")
