"""Restore tests ("health checks"): a backup restored as a new VM, started, seen running, and
destroyed — the proof that it boots (docs/verification.md §3)."""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from backups.choices import CheckStatus, CheckTrigger
from backups.models.lifecycle import Lifecycle


class HealthCheck(Lifecycle, models.Model):
    """One restore test of one backup: where it was restored, whether it ran, and that the
    restored VM was destroyed."""

    statuses = CheckStatus

    run = models.ForeignKey(
        "backups.BackupRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="health_checks",
        help_text="The run whose backup it tested.",
    )
    trigger = models.CharField(max_length=10, choices=CheckTrigger.choices)
    # The backup tested (copied: the row stays readable after the backup is pruned).
    remote = models.ForeignKey("backups.Remote", null=True, on_delete=models.SET_NULL)
    backup_path = models.CharField(max_length=500)
    vm_uuid = models.CharField("VM uuid", max_length=36)
    vm_name = models.CharField("VM", max_length=255, blank=True)
    timestamp = models.CharField(max_length=20, blank=True)

    sr_uuid = models.CharField("SR uuid", max_length=36)
    timeout = models.PositiveIntegerField(help_text="Seconds the VM may take to run.")
    status = models.CharField(
        max_length=12, choices=CheckStatus.choices, default=CheckStatus.PENDING
    )
    error = models.TextField(blank=True)
    restored_vm_uuid = models.CharField(max_length=36, blank=True)
    destroyed = models.BooleanField(
        default=False, help_text="The restored VM and its disks are gone from the pool."
    )
    boot_seconds = models.FloatField(null=True, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid testing.")
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [
            # A restore point's page: the restore tests of its backup.
            models.Index(fields=["remote", "backup_path"], name="backups_hc_remote_backup"),
            # The janitor: checks still running (their restored VMs are not leftovers).
            models.Index(fields=["status", "heartbeat"], name="backups_hc_status_beat"),
        ]

    def __str__(self) -> str:
        return f"restore test of {self.vm_name or self.vm_uuid} @ {self.timestamp}"

    def get_absolute_url(self) -> str:
        return reverse("backups:health_check_detail", args=[self.pk])

    @property
    def mark(self) -> str:
        """What its VM and disks carry on the pool (``xoweb:health-check``)."""
        return f"health-check {self.pk}"
