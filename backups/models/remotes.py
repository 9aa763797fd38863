"""Remotes: the folders backups are written to (a local disk or a mounted NFS/SMB share).

Only the engine's ``RemoteAdapter`` touches a remote's files; the row keeps what people see:
the outcome of the last check (a real write-fsync-read-delete) and the space it found.
"""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from backups.choices import RemoteStatus


class Remote(models.Model):
    """One backup repository: a local folder in Xen Orchestra's remote layout."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    path = models.CharField(
        "folder",
        max_length=500,
        help_text="Absolute path on every worker host, e.g. /srv/backups or /mnt/nfs/backups. "
        "It is created if missing.",
    )
    enabled = models.BooleanField(
        default=True, help_text="A disabled remote is left out of every run."
    )

    # Written by the check (on save, before each run, and on request).
    status = models.CharField(
        max_length=10, choices=RemoteStatus.choices, default=RemoteStatus.UNKNOWN
    )
    status_message = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    space_total = models.BigIntegerField(null=True, blank=True)
    space_used = models.BigIntegerField(null=True, blank=True)
    space_free = models.BigIntegerField(null=True, blank=True)

    # The storage outlook, recomputed from the space history at each reading
    # (backups/outlook.py): the growth per day and the moment the remote is full at that rate.
    growth_per_day = models.FloatField(null=True, blank=True)
    full_at = models.DateTimeField(null=True, blank=True)
    outlook_note = models.CharField(
        max_length=200, blank=True, help_text="Why there is no forecast (too little history…)."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="backups_remote_unique_name",
                violation_error_message="A remote with this name already exists.",
            ),
            models.UniqueConstraint(
                fields=["path"],
                name="backups_remote_unique_path",
                violation_error_message="Another remote already uses this folder.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("backups:remote_detail", args=[self.pk])

    def clean(self) -> None:
        path = (self.path or "").strip()
        if path:
            if not path.startswith("/"):
                raise ValidationError({"path": f"{path!r} is not absolute: start it with /"})
            if ".." in PurePosixPath(path).parts:
                raise ValidationError({"path": "the folder must not contain '..'"})
            self.path = str(PurePosixPath(path))

    @property
    def used_percent(self) -> float | None:
        if not self.space_total:
            return None
        return round(100 * (self.space_total - (self.space_free or 0)) / self.space_total, 1)
