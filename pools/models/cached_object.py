"""The abstract cached XAPI object: the columns, key, Meta and record parsing every cached model
shares.

The cache is written only by the watcher (``manage.py watch_pools``). Every cached row is keyed
by ``(pool, ref)``, carries the object's uuid, the columns the pages filter and sort on, and the
full XAPI record as JSON. Whether a row may be shown or used as the pool's current state is
decided in one place, :mod:`pools.liveness`; the querysets' ``live()`` apply that rule in SQL.
"""

from __future__ import annotations

import xmlrpc.client
from datetime import UTC, datetime

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone

from pools import liveness
from pools.models.pool import Pool
from pools.xapi_net import NULL_REF


class XapiJSONEncoder(DjangoJSONEncoder):
    """Stores XAPI records as JSON: XML-RPC datetimes become their wire text."""

    def default(self, o):
        if isinstance(o, xmlrpc.client.DateTime):
            return o.value
        if isinstance(o, xmlrpc.client.Binary):
            return o.data.decode("latin-1")
        return super().default(o)


class CachedObjectQuerySet(models.QuerySet):
    """Filters by the liveness rule (:mod:`pools.liveness`), e.g. ``VM.objects.guests().live()``
    for the VMs a backup may select."""

    def live(self, now: datetime | None = None) -> CachedObjectQuerySet:
        """Rows that are their pool's state now: pool connected, a watcher beating, no loss."""
        return self.filter(liveness.live_objects_filter(now or timezone.now()))

    def not_live(self, now: datetime | None = None) -> CachedObjectQuerySet:
        """Everything ``live()`` leaves out (stale or unknown): shown greyed, never used."""
        return self.exclude(liveness.live_objects_filter(now or timezone.now()))

    def stale(self) -> CachedObjectQuerySet:
        """Rows of a lost pool, greyed until the grace period ends or the pool comes back."""
        return self.filter(Q(stale_since__isnull=False) | Q(pool__stale_since__isnull=False))


class CachedObject(models.Model):
    """Fields every cached XAPI object has (abstract)."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE)
    ref = models.CharField(max_length=64)
    uuid = models.CharField(max_length=36, blank=True)
    name_label = models.CharField(max_length=255, blank=True)
    record = models.JSONField(default=dict, encoder=XapiJSONEncoder)
    # Set on every row of a pool when its connection is lost; cleared by the resync.
    stale_since = models.DateTimeField(null=True, blank=True)

    objects = CachedObjectQuerySet.as_manager()

    #: The XAPI class name used in ``event.from`` and ``<class>.get_all_records``.
    xapi_class = ""

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name_label or self.uuid or self.ref

    @property
    def is_stale(self) -> bool:
        return self.stale_since is not None

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        """The column values of a row, taken from its XAPI record."""
        return {"uuid": record.get("uuid", ""), "name_label": record.get("name_label", "")[:255]}


def _cache_meta(
    model_name: str,
    *,
    extra_indexes: tuple = (),
    verbose_name: str = "",
    plural: str = "",
    permissions: tuple = (),
) -> type:
    """A Meta with the (pool, ref) key every cached model shares; XAPI's class names (SR, VDI…)
    keep their capitals in the admin."""

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["pool", "ref"],
                name=f"pools_{model_name}_unique_pool_ref",
                violation_error_message=f"This pool already has a {model_name} with this ref.",
            )
        ]
        indexes = [
            # Lookups by uuid (a backup finding its VM, a link from another app).
            models.Index(fields=["uuid"], name=f"pools_{model_name}_uuid"),
            *extra_indexes,
        ]

    if verbose_name:
        Meta.verbose_name = verbose_name
        Meta.verbose_name_plural = plural or f"{verbose_name}s"
    if permissions:
        Meta.permissions = list(permissions)
    return Meta


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _ref(record: dict, key: str) -> str:
    """The ref in ``record[key]``, or "" where XAPI says there is none (``OpaqueRef:NULL``)."""
    ref = record.get(key, NULL_REF)
    return "" if ref == NULL_REF else ref


def _datetime(value):
    """XAPI datetimes come as ``YYYYMMDDTHH:MM:SSZ``; the epoch means "never"."""
    if value in (None, ""):
        return None
    text = str(value)
    for pattern in ("%Y%m%dT%H:%M:%SZ", "%Y%m%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            moment = datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        return None if moment.year <= 1970 else moment
    return None
