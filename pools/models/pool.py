"""The pools xoweb manages, and the heartbeat of the watcher that keeps their cache.

A pool is what a person adds (address, credentials, TLS pin); the watcher writes its connection
state. Whether that state lets the cache be shown or used is decided by :mod:`pools.liveness`.
"""

from __future__ import annotations

from datetime import datetime

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from pools import crypto, liveness
from pools.addresses import normalise_fingerprint, normalise_url
from pools.choices import PoolStatus, TlsMode


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
