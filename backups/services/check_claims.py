"""Claims of verifications and restore tests: each is done once, by one process, and a process
that died is noticed by its silent heartbeat (docs/architecture.md §Claims and heartbeats).

Both rows (``Verification``, ``HealthCheck``) carry ``status``, ``started``, ``heartbeat`` and
``worker``; these functions are written once for both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db.models import Model, Q
from django.utils import timezone

from backups.choices import CheckStatus
from backups.models import HealthCheck, Verification
from backups.services.heartbeat import holder_is_dead, holder_name
from tasks.heartbeat import heartbeat

logger = logging.getLogger(__name__)


def claim(model: type[Model], pk: int) -> Model | None:
    """``pending → running`` once; the row when this process won, else None.

    A redelivered message finds the row running or ended and changes nothing, unless the
    process recorded as running it is proven dead (same host, no such pid): the row is then
    marked interrupted.
    """
    now = timezone.now()
    claimed = model.objects.filter(pk=pk, status=CheckStatus.PENDING).update(
        status=CheckStatus.RUNNING, started=now, heartbeat=now, worker=holder_name()
    )
    row = model.objects.filter(pk=pk).first()
    if row is None or claimed:
        return row
    if row.status == CheckStatus.RUNNING and holder_is_dead(row.worker):
        end(row, CheckStatus.INTERRUPTED, f"interrupted: the process doing it ({row.worker}) died")
    else:
        logger.info("%s is %s: this message changes nothing", row, row.status)
    return None


def interrupt_dead(model: type[Model], now=None) -> int:
    """Mark interrupted the running rows whose heartbeat stopped; return how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.BACKUP_HEARTBEAT_TIMEOUT)
    return model.objects.filter(
        Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True), status=CheckStatus.RUNNING
    ).update(
        status=CheckStatus.INTERRUPTED,
        ended=now,
        **{_message_field(model): "interrupted: no process worked on it (a worker died)"},
    )


def end(row: Model, status: str, message: str, **fields) -> bool:
    """``running → status`` once (never over an end someone else wrote)."""
    done = (
        type(row)
        .objects.filter(pk=row.pk, status=CheckStatus.RUNNING)
        .update(
            status=status,
            ended=timezone.now(),
            **{_message_field(type(row)): message[:10_000]},
            **fields,
        )
    )
    return bool(done)


@contextmanager
def beating(row: Model) -> Iterator[None]:
    """Beat for ``row`` while the block runs (only while it is still running)."""
    with heartbeat.holding(type(row), row.pk, field="heartbeat", status=CheckStatus.RUNNING):
        yield


def _message_field(model: type[Model]) -> str:
    """Where each kind of row says why it ended."""
    return {Verification: "message", HealthCheck: "error"}[model]
