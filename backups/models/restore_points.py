"""The restore point index: what each remote holds, read back from its metadata files.

The remote is the truth: the index is rebuilt from it (:mod:`backups.services.restore_points`)
after each VM backup, on request, and by ``backup_list``; a row whose metadata file is gone is
deleted by the next rebuild.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse


class RestorePoint(models.Model):
    """One backup of one VM on one remote (one ``xo-vm-backups/<vm>/<ts>.json``)."""

    remote = models.ForeignKey(
        "backups.Remote", on_delete=models.CASCADE, related_name="restore_points"
    )
    path = models.CharField(max_length=500, help_text="The metadata file, relative to the remote.")
    vm_uuid = models.CharField("VM uuid", max_length=36)
    vm_name = models.CharField("VM", max_length=255, blank=True)
    timestamp = models.CharField(max_length=20, help_text="The backup's name (UTC).")
    taken_at = models.DateTimeField()
    job_uuid = models.CharField(max_length=36, blank=True)
    schedule_uuid = models.CharField(max_length=36, blank=True)
    mode = models.CharField(max_length=8, blank=True)
    size = models.BigIntegerField(default=0)
    # [{"vdi", "name", "file", "differencing", "size", "sha256"}], one per disk.
    disks = models.JSONField(default=list, blank=True)
    indexed_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["vm_uuid", "taken_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["remote", "path"],
                name="backups_restorepoint_unique_path",
                violation_error_message="This backup is already indexed.",
            )
        ]
        indexes = [
            # The restore points of one VM, oldest first (VM page, backup_list --vm).
            models.Index(fields=["vm_uuid", "taken_at"], name="backups_point_vm_taken"),
            # A remote's page: its restore points, newest first.
            models.Index(fields=["remote", "-taken_at"], name="backups_point_remote_taken"),
        ]
        permissions = [
            ("restore_restorepoint", "Can restore a disk or a VM from a backup"),
            ("verify_restorepoint", "Can verify backups and run restore tests"),
        ]

    def __str__(self) -> str:
        return f"{self.vm_name or self.vm_uuid} @ {self.timestamp}"

    def get_absolute_url(self) -> str:
        return reverse("backups:point_detail", args=[self.pk])

    def disk(self, vdi_uuid: str) -> dict | None:
        return next((disk for disk in self.disks if disk.get("vdi") == vdi_uuid), None)
