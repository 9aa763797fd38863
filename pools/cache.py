"""Writing the object cache: full syncs, event batches, losses and purges.

Only the watcher calls these (pools/watcher.py), and it tells other apps what happened through
the pool signals. Every function writes in one transaction with bulk statements, so a page never
sees half a batch and 10,000 VMs take a handful of queries per 500 rows. How long a lost pool's
objects stay greyed is :mod:`pools.liveness`'s rule (``grace_cutoff``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from pools import liveness
from pools.choices import PoolStatus
from pools.models import CACHED_MODELS, CachedObject, Pool, XapiTask

logger = logging.getLogger(__name__)

BATCH_SIZE = 500

#: Cached model by the lower-case class name XAPI uses in events and ``valid_ref_counts``.
MODEL_BY_CLASS: dict[str, type[CachedObject]] = {
    model.xapi_class.lower(): model for model in CACHED_MODELS
}


def _update_fields(model: type[CachedObject]) -> list[str]:
    return [
        field.name
        for field in model._meta.concrete_fields
        if not field.primary_key and field.name not in ("pool", "ref")
    ]


def _chunks(items: list, size: int = BATCH_SIZE) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _task_histories(pool: Pool, refs: list[str]) -> dict[str, tuple[float, list]]:
    histories: dict[str, tuple[float, list]] = {}
    for chunk in _chunks(refs):
        rows = XapiTask.objects.filter(pool=pool, ref__in=chunk).values_list(
            "ref", "progress", "progress_history"
        )
        histories.update({ref: (progress, history) for ref, progress, history in rows})
    return histories


def upsert(model: type[CachedObject], pool: Pool, records: dict[str, dict]) -> int:
    """Insert or update rows for ``{ref: record}`` (and clear their stale mark)."""
    if not records:
        return 0
    histories = _task_histories(pool, list(records)) if model is XapiTask else {}
    now = time.time()
    rows = []
    for ref, record in records.items():
        row = model(pool=pool, ref=ref, record=record, **model.columns_from_record(record))
        if model is XapiTask:
            previous, history = histories.get(ref, (None, []))
            if previous != row.progress or not history:
                history = [*history, [round(now, 3), row.progress]]
            row.progress_history = history[-XapiTask.PROGRESS_HISTORY_LENGTH :]
        rows.append(row)
    model.objects.bulk_create(
        rows,
        batch_size=BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["pool", "ref"],
        update_fields=_update_fields(model),
    )
    return len(rows)


def delete_refs(model: type[CachedObject], pool: Pool, refs: Iterable[str]) -> int:
    deleted = 0
    for chunk in _chunks(list(refs)):
        deleted += model.objects.filter(pool=pool, ref__in=chunk).delete()[0]
    return deleted


def replace_class(model: type[CachedObject], pool: Pool, records: dict[str, dict]) -> None:
    """Make the pool's rows of ``model`` exactly ``records``: upsert them, delete the rest."""
    cached = set(model.objects.filter(pool=pool).values_list("ref", flat=True))
    vanished = cached - records.keys()
    upsert(model, pool, records)
    delete_refs(model, pool, vanished)


def full_sync(
    pool: Pool, records_by_class: dict[str, dict[str, dict]], *, pool_fields: dict
) -> None:
    """Replace the pool's whole cache with a fresh fetch and mark the pool connected."""
    now = timezone.now()
    with transaction.atomic():
        for xapi_class, records in records_by_class.items():
            replace_class(MODEL_BY_CLASS[xapi_class.lower()], pool, records)
        Pool.objects.filter(pk=pool.pk).update(
            status=PoolStatus.CONNECTED,
            status_message="",
            stale_since=None,
            connected_at=now,
            last_event_at=now,
            **pool_fields,
        )


def apply_events(pool: Pool, events: list[dict], *, pool_fields: dict | None = None) -> int:
    """Apply one ``event.from`` batch: ``del`` drops the ref, ``add``/``mod`` upsert its snapshot.

    Events are reduced per ref first (the last one wins), since XAPI does not order them
    across objects. Returns the number of events applied.
    """
    upserts: dict[str, dict[str, dict]] = {}
    deletes: dict[str, set[str]] = {}
    applied = 0
    for event in events:
        xapi_class = str(event.get("class", "")).lower()
        if xapi_class not in MODEL_BY_CLASS:
            continue
        ref = event.get("ref", "")
        applied += 1
        if event.get("operation") == "del":
            upserts.get(xapi_class, {}).pop(ref, None)
            deletes.setdefault(xapi_class, set()).add(ref)
        elif "snapshot" in event:
            deletes.get(xapi_class, set()).discard(ref)
            upserts.setdefault(xapi_class, {})[ref] = event["snapshot"]
    with transaction.atomic():
        for xapi_class, records in upserts.items():
            upsert(MODEL_BY_CLASS[xapi_class], pool, records)
        for xapi_class, refs in deletes.items():
            delete_refs(MODEL_BY_CLASS[xapi_class], pool, refs)
        Pool.objects.filter(pk=pool.pk).update(last_event_at=timezone.now(), **(pool_fields or {}))
    return applied


def mark_lost(pool: Pool, *, status: str, reason: str, now: datetime | None = None) -> bool:
    """Record that the watcher lost the pool: unreachable (``status`` stale), refused (error)
    or disabled. Returns whether this loss greyed the pool's objects.

    Steps, in one transaction:

    1. a connected pool gets its loss time (``stale_since = now``), which starts the grace
       period; a pool already lost keeps the time of the first loss of the outage;
    2. the status: the one asked for when the pool has a loss time; otherwise there is no cache
       to grey (the pool never connected, or was purged), and an unreachable pool is shown
       ``connecting`` (never connected) or ``disconnected`` (purged), never stale without a
       time;
    3. every row of the pool not yet greyed gets the pool's loss time.
    """
    now = now or timezone.now()
    with transaction.atomic():
        greyed = Pool.objects.filter(
            pk=pool.pk, stale_since__isnull=True, status=PoolStatus.CONNECTED
        ).update(stale_since=now)
        lost_at, connected_at = Pool.objects.filter(pk=pool.pk).values_list(
            "stale_since", "connected_at"
        ).first() or (None, None)
        if lost_at is None and status == PoolStatus.STALE:
            status = PoolStatus.CONNECTING if connected_at is None else PoolStatus.DISCONNECTED
        Pool.objects.filter(pk=pool.pk).update(status=status, status_message=reason[:2000])
        if lost_at is not None:
            for model in CACHED_MODELS:
                model.objects.filter(pool=pool, stale_since__isnull=True).update(
                    stale_since=lost_at
                )
    return bool(greyed)


def purge(pool: Pool, *, stale_since: datetime | None = None) -> bool:
    """Delete the pool's cached objects, if it is still stale (since ``stale_since`` if given).

    The check and the delete are one transaction, so a resync that finished in between wins.
    Returns whether it purged (the watcher then tells other apps with ``pool_purged``).
    """
    with transaction.atomic():
        claim = Pool.objects.filter(pk=pool.pk, stale_since__isnull=False)
        if stale_since is not None:
            claim = claim.filter(stale_since=stale_since)
        current = claim.values_list("status", flat=True).first()
        if current is None:
            return False
        status = PoolStatus.DISCONNECTED if current == PoolStatus.STALE else current
        claim.update(stale_since=None, status=status)
        for model in CACHED_MODELS:
            model.objects.filter(pool=pool).delete()
    logger.info("pool %s: cached objects purged after the grace period", pool.name)
    return True


def purge_expired(now: datetime | None = None, *, pool: Pool | None = None) -> list[Pool]:
    """Purge every pool (or only ``pool``) lost for longer than the grace period at ``now``."""
    expired = Pool.objects.filter(stale_since__lte=liveness.grace_cutoff(now or timezone.now()))
    if pool is not None:
        expired = expired.filter(pk=pool.pk)
    return [lost for lost in expired if purge(lost, stale_since=lost.stale_since)]
