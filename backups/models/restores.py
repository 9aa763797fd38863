"""Restores people asked for: what, to where, and how it ended. The work runs in a worker;
the row is claimed once (a redelivered message finds it running or done)."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from backups.choices import FileFormat, RestoreKind, RestoreStatus
from backups.models.lifecycle import Lifecycle


class Restore(Lifecycle, models.Model):
    """One restore of a restore point: a disk to an SR or a file, or the whole VM."""

    statuses = RestoreStatus

    point = models.ForeignKey(
        "backups.RestorePoint", null=True, on_delete=models.SET_NULL, related_name="restores"
    )
    # Copied from the point: the row stays readable after the point is pruned.
    remote = models.ForeignKey("backups.Remote", null=True, on_delete=models.SET_NULL)
    backup_path = models.CharField(max_length=500)
    vm_uuid = models.CharField(max_length=36)
    vm_name = models.CharField(max_length=255, blank=True)
    timestamp = models.CharField(max_length=20, blank=True)

    kind = models.CharField(max_length=10, choices=RestoreKind.choices)
    vdi_uuid = models.CharField("source VDI uuid", max_length=36, blank=True)
    sr_uuid = models.CharField("SR uuid", max_length=36, blank=True)
    file_path = models.CharField(max_length=500, blank=True)
    file_format = models.CharField(max_length=4, choices=FileFormat.choices, blank=True)
    # A whole VM only: its VIFs get MACs of their own instead of the backup's (a copy that runs
    # beside its original must not share its addresses on the network).
    new_macs = models.BooleanField("new MAC addresses", default=False)

    status = models.CharField(
        max_length=12, choices=RestoreStatus.choices, default=RestoreStatus.PENDING
    )
    error = models.TextField(blank=True)
    # The new VDI or VM uuid, or {"path", "size", "sha256"} of the file.
    result = models.JSONField(default=dict, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]

    def __str__(self) -> str:
        return f"restore {self.pk} of {self.vm_name or self.vm_uuid} @ {self.timestamp}"

    def get_absolute_url(self) -> str:
        return reverse("backups:restore_detail", args=[self.pk])
