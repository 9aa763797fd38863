"""Verification: each check of a remote's backups, and the last verdict on each backup and file.

The verdicts are keyed by remote and path, not tied to the restore point index: the index is
rebuilt from the remote whenever it is read, and a verdict must survive that (docs/verification.md
§2 says why they live here rather than on the remote). They are derived data — a new check
rebuilds them from the remote's files and the SHA-256 their metadata recorded.
"""

from __future__ import annotations

from django.db import models
from django.urls import reverse

from backups.choices import CheckStatus, CheckTrigger, ContentStatus
from backups.models.lifecycle import Lifecycle


class Verification(Lifecycle, models.Model):
    """One check of the backups on one remote (every VM, or some): when, how deep, the outcome."""

    statuses = CheckStatus

    remote = models.ForeignKey(
        "backups.Remote", on_delete=models.CASCADE, related_name="verifications"
    )
    vm_uuids = models.JSONField("VM uuids", default=list, blank=True, help_text="None: every VM.")
    deep = models.BooleanField(default=False, help_text="Every file read and its SHA-256 compared.")
    trigger = models.CharField(max_length=10, choices=CheckTrigger.choices)
    run = models.ForeignKey(
        "backups.BackupRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verifications",
        help_text="The run this verification followed.",
    )
    status = models.CharField(
        max_length=12, choices=CheckStatus.choices, default=CheckStatus.PENDING
    )
    message = models.TextField(blank=True)
    backups_checked = models.PositiveIntegerField(default=0)
    backups_failed = models.PositiveIntegerField(default=0)
    files_checked = models.PositiveIntegerField(default=0)
    bytes_read = models.BigIntegerField(default=0)
    skipped = models.JSONField(default=dict, blank=True, help_text="{vm uuid: why not checked}")
    # What this check found wrong, as it found it (the verdicts move on with later checks):
    # [{"path", "vm", "timestamp", "problems"}], one per backup that failed.
    failures = models.JSONField(default=list, blank=True)
    requested_by = models.CharField(max_length=150, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid checking.")
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]
        indexes = [
            # The remote page: its verifications, newest first.
            models.Index(fields=["remote", "-created"], name="backups_verif_remote_created"),
        ]

    def __str__(self) -> str:
        what = "deep check" if self.deep else "check"
        return f"{what} {self.pk} of {self.remote.name}" if self.remote_id else what

    def get_absolute_url(self) -> str:
        return reverse("backups:verification_detail", args=[self.pk])


class BackupVerdict(models.Model):
    """The last verification's verdict on one backup (a restore point), by remote and path."""

    remote = models.ForeignKey("backups.Remote", on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=500, help_text="The metadata file, relative to the remote.")
    vm_uuid = models.CharField("VM uuid", max_length=36)
    ok = models.BooleanField()
    deep = models.BooleanField(default=False, help_text="Its files' SHA-256 were compared.")
    problems = models.JSONField(default=list, blank=True)
    # {source vdi uuid: [files of its chain, newest first]}, as the check found them.
    chains = models.JSONField(default=dict, blank=True)
    checked_at = models.DateTimeField()
    verification = models.ForeignKey(
        Verification, null=True, blank=True, on_delete=models.SET_NULL, related_name="verdicts"
    )

    class Meta:
        ordering = ["remote", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["remote", "path"],
                name="backups_backupverdict_unique_path",
                violation_error_message="This backup already has a verdict.",
            )
        ]
        indexes = [
            # A VM's page and a verification's re-record: the verdicts of one VM on one remote.
            models.Index(fields=["remote", "vm_uuid"], name="backups_bverdict_remote_vm"),
        ]

    def __str__(self) -> str:
        return f"{self.path}: {'ok' if self.ok else 'failed'}"

    @property
    def css(self) -> str:
        return "ok" if self.ok else "bad"


class FileVerdict(models.Model):
    """The last verdict on one VHD file of a remote: its structure (every check) and its
    content (deep checks; kept by the checks that do not read it, while the file is unchanged)."""

    remote = models.ForeignKey("backups.Remote", on_delete=models.CASCADE, related_name="+")
    path = models.CharField(max_length=500)
    vm_uuid = models.CharField("VM uuid", max_length=36)
    ok = models.BooleanField(help_text="Sound: no error, and its content not found changed.")
    errors = models.JSONField(default=list, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    parent = models.CharField(max_length=500, blank=True)
    size = models.BigIntegerField(default=0)
    mtime_ns = models.BigIntegerField(default=0)
    content = models.CharField(
        max_length=12, choices=ContentStatus.choices, default=ContentStatus.UNCHECKED
    )
    content_problem = models.TextField(blank=True)
    sha256 = models.CharField(
        max_length=64, blank=True, help_text="As the last deep check read it."
    )
    content_checked_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField()
    verification = models.ForeignKey(
        Verification, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["remote", "path"]
        constraints = [
            models.UniqueConstraint(
                fields=["remote", "path"],
                name="backups_fileverdict_unique_path",
                violation_error_message="This file already has a verdict.",
            )
        ]
        indexes = [
            # known_bad(): the bad files of the remotes a backup or a restore uses.
            models.Index(fields=["remote", "ok"], name="backups_fverdict_remote_ok"),
            # A verification's re-record: the verdicts of one VM folder.
            models.Index(fields=["remote", "vm_uuid"], name="backups_fverdict_remote_vm"),
        ]

    def __str__(self) -> str:
        return f"{self.path}: {'ok' if self.ok else 'bad'}"

    @property
    def problems(self) -> list[str]:
        return [*self.errors, *([self.content_problem] if self.content_problem else [])]
