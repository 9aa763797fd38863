"""The space history of remotes: one row per reading of a remote's filesystem, written by its
check (on save, before each run, and hourly by beat). The storage outlook is computed from it
(:mod:`backups.outlook`)."""

from __future__ import annotations

from django.db import models


class RemoteSpaceSample(models.Model):
    """One reading of a remote's space: when, and the bytes used, free and in all."""

    remote = models.ForeignKey(
        "backups.Remote", on_delete=models.CASCADE, related_name="space_samples"
    )
    taken_at = models.DateTimeField()
    total = models.BigIntegerField()
    used = models.BigIntegerField()
    free = models.BigIntegerField()

    class Meta:
        ordering = ["remote", "taken_at"]
        indexes = [
            # The outlook of one remote: its readings of the last weeks, oldest first; and the
            # newest reading (is it time for another?).
            models.Index(fields=["remote", "taken_at"], name="backups_space_remote_taken"),
        ]
        verbose_name = "remote space sample"

    def __str__(self) -> str:
        return f"{self.remote_id} @ {self.taken_at:%Y-%m-%d %H:%M}: {self.used}/{self.total}"
