"""``{% load liveness %}``: the liveness verdict on a pool or a cached object, for templates.

``{% with state=pool|verdict:watch %}`` where ``watch`` is the view's
:func:`pools.liveness.current_watch`; the badge is ``{% include "pools/_liveness.html" %}``.
Templates show the verdict and never decide it themselves.
"""

from __future__ import annotations

from django import template

from pools.liveness import Verdict, Watch
from pools.models import Pool

register = template.Library()


@register.filter
def verdict(row: object, watch: Watch) -> Verdict:
    """The verdict on ``row``: a ``Pool``, or a cached object (its pool loaded with it)."""
    return watch.pool(row) if isinstance(row, Pool) else watch.object(row)
