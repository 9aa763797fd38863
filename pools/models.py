"""Models of the pools app: the pools xoweb manages and the cache of their XAPI objects.

The cache is written only by the watcher (``manage.py watch_pools``). Every cached row is keyed
by ``(pool, ref)``, carries the object's uuid, the columns the pages filter and sort on, and the
full XAPI record as JSON. Whether a row may be shown or used as the pool's current state is
decided in one place, :mod:`pools.liveness`; the querysets' ``live()`` apply that rule in SQL.
"""

from __future__ import annotations

import xmlrpc.client
from datetime import UTC, datetime

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from pools import crypto, liveness
from pools.addresses import normalise_fingerprint, normalise_url
from pools.choices import PoolStatus, PowerState, TlsMode, VbdType, XapiTaskStatus

NULL_REF = "OpaqueRef:NULL"


class XapiJSONEncoder(DjangoJSONEncoder):
    """Stores XAPI records as JSON: XML-RPC datetimes become their wire text."""

    def default(self, o):
        if isinstance(o, xmlrpc.client.DateTime):
            return o.value
        if isinstance(o, xmlrpc.client.Binary):
            return o.data.decode("latin-1")
        return super().default(o)


class PoolQuerySet(models.QuerySet):
    def enabled(self) -> PoolQuerySet:
        return self.filter(enabled=True)

    def live(self, now: datetime | None = None) -> PoolQuerySet:
        """Pools whose cache is their state now (:mod:`pools.liveness`)."""
        return self.filter(liveness.live_pools_filter(now or timezone.now()))

    def with_counts(self) -> PoolQuerySet:
        """Annotate host/sr/vm/vdi/task counts (vm: guests only), in the same single query."""

        def count(model_name: str, **filters) -> Coalesce:
            model = apps.get_model("pools", model_name)
            rows = (
                model.objects.filter(pool=OuterRef("pk"), **filters)
                .order_by()
                .values("pool")
                .annotate(n=Count("pk"))
                .values("n")
            )
            return Coalesce(Subquery(rows, output_field=models.IntegerField()), 0)

        return self.annotate(
            host_count=count("Host"),
            sr_count=count("SR"),
            vm_count=count("VM", is_a_snapshot=False, is_a_template=False, is_control_domain=False),
            # Hidden base copies of VHD chains (managed=false) are no disks (docs/xapi.md §12).
            vdi_count=count("VDI", managed=True),
            task_count=count("XapiTask"),
        )


class Pool(models.Model):
    """One XCP-ng / XenServer pool that xoweb connects to through its master (coordinator)."""

    name = models.CharField(max_length=100, unique=True)
    master_url = models.CharField(
        "master address",
        max_length=255,
        help_text="URL of the pool master, e.g. https://10.0.0.1 or http://xcp1.example:8080",
    )
    username = models.CharField(max_length=100, default="root")
    # A Fernet token (pools/crypto.py); the clear password is never stored, rendered or logged.
    password_encrypted = models.TextField(editable=False, default="")
    tls_mode = models.CharField(
        "TLS verification", max_length=8, choices=TlsMode.choices, default=TlsMode.PIN
    )
    tls_fingerprint = models.CharField(
        "certificate SHA-256 fingerprint",
        max_length=95,
        blank=True,
        help_text="Pinned certificate of the master (filled on first use when left empty).",
    )
    # The other hosts' certificates, trusted on first use when one of them became the master
    # (failover), then pinned like the master's: {host URL: fingerprint}.
    member_fingerprints = models.JSONField(
        "member certificate fingerprints",
        default=dict,
        blank=True,
        help_text="SHA-256 fingerprints of the other hosts' certificates, pinned on first use.",
    )
    enabled = models.BooleanField(default=True)

    # Written by the watcher.
    status = models.CharField(
        max_length=16, choices=PoolStatus.choices, default=PoolStatus.CONNECTING
    )
    status_message = models.TextField(blank=True)
    stale_since = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    connected_url = models.CharField(
        max_length=255, blank=True, help_text="Address of the master the watcher is talking to."
    )
    xapi_uuid = models.CharField("XAPI pool uuid", max_length=36, blank=True)
    xapi_name_label = models.CharField("XAPI pool name", max_length=255, blank=True)
    member_urls = models.JSONField(
        default=list, blank=True, help_text="Addresses of the pool's hosts, probed on failover."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PoolQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def set_password(self, password: str) -> None:
        self.password_encrypted = crypto.encrypt_secret(password)

    def get_password(self) -> str:
        return crypto.decrypt_secret(self.password_encrypted) if self.password_encrypted else ""

    def clean(self) -> None:
        errors = {}
        if self.master_url:  # an empty one is refused as a required field
            try:
                self.master_url = normalise_url(self.master_url)
            except ValueError as error:
                errors["master_url"] = str(error)
        if self.tls_fingerprint:
            try:
                self.tls_fingerprint = normalise_fingerprint(self.tls_fingerprint)
            except ValueError as error:
                errors["tls_fingerprint"] = str(error)
        if errors:
            raise ValidationError(errors)


class WatcherHeartbeat(models.Model):
    """The heartbeat of one ``watch_pools`` process, rewritten every few seconds."""

    name = models.CharField(max_length=100, unique=True)
    hostname = models.CharField(max_length=255)
    pid = models.IntegerField()
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} ({self.hostname}:{self.pid})"

    def is_alive(self, now: datetime | None = None) -> bool:
        return liveness.heartbeat_is_fresh(self.beat_at, now or timezone.now())


# --- the object cache ------------------------------------------------------------------------


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


class Host(CachedObject):
    """One host (server) of a pool, as XAPI last described it."""

    xapi_class = "host"
    address = models.CharField(max_length=255, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    enabled = models.BooleanField(default=True)

    Meta = _cache_meta("host")

    def get_absolute_url(self) -> str:
        """The VMs running on this host."""
        return f"{reverse('pools:vm_list')}?host={self.pk}"

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "address": record.get("address", ""),
            "hostname": record.get("hostname", ""),
            "enabled": bool(record.get("enabled", True)),
        }


class SR(CachedObject):
    """One storage repository of a pool."""

    xapi_class = "SR"
    type = models.CharField(max_length=32, blank=True)
    content_type = models.CharField(max_length=32, blank=True)
    shared = models.BooleanField(default=False)
    physical_size = models.BigIntegerField(default=0)
    physical_utilisation = models.BigIntegerField(default=0)

    Meta = _cache_meta("sr", verbose_name="SR")

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "type": record.get("type", ""),
            "content_type": record.get("content_type", ""),
            "shared": bool(record.get("shared", False)),
            "physical_size": _int(record.get("physical_size")),
            "physical_utilisation": _int(record.get("physical_utilisation")),
        }


class VMQuerySet(CachedObjectQuerySet):
    def guests(self) -> VMQuerySet:
        """Real guest VMs: neither snapshots, templates nor the control domain."""
        return self.filter(is_a_snapshot=False, is_a_template=False, is_control_domain=False)

    def snapshots(self) -> VMQuerySet:
        return self.filter(is_a_snapshot=True)


class VM(CachedObject):
    """One VM record of a pool: a guest, a snapshot, a template or a control domain (flagged)."""

    xapi_class = "VM"
    name_description = models.TextField(blank=True)
    power_state = models.CharField(max_length=16, choices=PowerState.choices, blank=True)
    is_a_template = models.BooleanField(default=False)
    is_a_snapshot = models.BooleanField(default=False)
    is_control_domain = models.BooleanField(default=False)
    snapshot_of_ref = models.CharField(max_length=64, blank=True)
    snapshot_time = models.DateTimeField(null=True, blank=True)
    resident_on_ref = models.CharField(max_length=64, blank=True)
    tags = models.JSONField(default=list)

    objects = VMQuerySet.as_manager()

    Meta = _cache_meta(
        "vm",
        verbose_name="VM",
        extra_indexes=(
            # The VM list: guests of a pool sorted by name (the default sort).
            models.Index(
                fields=["is_a_snapshot", "is_a_template", "is_control_domain", "name_label"],
                name="pools_vm_kind_name",
            ),
            # The snapshots of a VM (backups looking for their base snapshot).
            models.Index(fields=["pool", "snapshot_of_ref"], name="pools_vm_snapshot_of"),
        ),
    )

    def get_absolute_url(self) -> str:
        """The VM list, showing this VM (found by its uuid)."""
        return f"{reverse('pools:vm_list')}?kind=all&q={self.uuid}"

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "name_description": record.get("name_description", ""),
            "power_state": record.get("power_state", ""),
            "is_a_template": bool(record.get("is_a_template", False)),
            "is_a_snapshot": bool(record.get("is_a_snapshot", False)),
            "is_control_domain": bool(record.get("is_control_domain", False)),
            "snapshot_of_ref": _ref(record, "snapshot_of"),
            "snapshot_time": _datetime(record.get("snapshot_time")),
            "resident_on_ref": _ref(record, "resident_on"),
            "tags": list(record.get("tags", [])),
        }


class VDI(CachedObject):
    """One virtual disk image of a pool."""

    xapi_class = "VDI"
    sr_ref = models.CharField(max_length=64, blank=True)
    type = models.CharField(max_length=32, blank=True)
    virtual_size = models.BigIntegerField(default=0)
    physical_utilisation = models.BigIntegerField(default=0)
    is_a_snapshot = models.BooleanField(default=False)
    snapshot_of_ref = models.CharField(max_length=64, blank=True)
    managed = models.BooleanField(default=True)
    missing = models.BooleanField(default=False)

    # The disks of one page of the VM list are read by (pool, ref): the unique constraint's index.
    Meta = _cache_meta("vdi", verbose_name="VDI")

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            **super().columns_from_record(record),
            "sr_ref": _ref(record, "SR"),
            "type": record.get("type", ""),
            "virtual_size": _int(record.get("virtual_size")),
            "physical_utilisation": _int(record.get("physical_utilisation")),
            "is_a_snapshot": bool(record.get("is_a_snapshot", False)),
            "snapshot_of_ref": _ref(record, "snapshot_of"),
            "managed": bool(record.get("managed", True)),
            "missing": bool(record.get("missing", False)),
        }


class VBD(CachedObject):
    """One virtual block device: the link between a VM and a VDI (or an empty CD drive)."""

    xapi_class = "VBD"
    vm_ref = models.CharField(max_length=64, blank=True)
    vdi_ref = models.CharField(max_length=64, blank=True)
    type = models.CharField(max_length=8, choices=VbdType.choices, blank=True)
    userdevice = models.CharField(max_length=16, blank=True)
    currently_attached = models.BooleanField(default=False)

    Meta = _cache_meta(
        "vbd",
        verbose_name="VBD",
        extra_indexes=(
            # The disks of the VMs on one page of the VM list: VBD where pool and vm_ref in (...).
            models.Index(fields=["pool", "vm_ref"], name="pools_vbd_pool_vm"),
        ),
    )

    @classmethod
    def columns_from_record(cls, record: dict) -> dict:
        return {
            "uuid": record.get("uuid", ""),
            "name_label": record.get("device", "") or record.get("userdevice", ""),
            "vm_ref": record.get("VM", ""),
            "vdi_ref": _ref(record, "VDI"),
            "type": record.get("type", ""),
            "userdevice": str(record.get("userdevice", ""))[:16],
            "currently_attached": bool(record.get("currently_attached", False)),
        }


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


#: Every cached model, in the order the watcher fetches them.
CACHED_MODELS: tuple[type[CachedObject], ...] = (Host, SR, VM, VDI, VBD, XapiTask)
