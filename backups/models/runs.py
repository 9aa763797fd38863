"""What happened: backup runs, the backup of each VM in a run, and each disk of it.

A run row is the source of truth for a run, kept current by the processes doing its work
(``heartbeat`` is rewritten every ``BACKUP_HEARTBEAT_SECONDS`` while any of its VMs is being
backed up). Every change of state is a conditional UPDATE on the status column
(:mod:`backups.services.runs`), so a redelivered Celery message never claims a run or a VM
twice; the partial unique constraint below is the database's own guarantee that one job never
has two running runs, whatever the isolation level.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.urls import reverse

from backups.choices import (
    DiskMode,
    RunStatus,
    Trigger,
    VmBackupStatus,
)
from backups.models.lifecycle import Lifecycle


class BackupRun(Lifecycle, models.Model):
    """One run of a job: its VMs, when it ran, how it ended."""

    statuses = RunStatus

    job = models.ForeignKey("backups.BackupJob", on_delete=models.CASCADE, related_name="runs")
    schedule = models.ForeignKey(
        "backups.Schedule",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="runs",
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    # For a run fired by beat: the moment of the schedule it stands for (the unique key that
    # keeps a moment from running twice, whatever beat or the broker deliver twice).
    scheduled_for = models.DateTimeField(null=True, blank=True)
    force_full = models.BooleanField(
        default=False, help_text="Asked to make every disk a full (besides the schedule's rule)."
    )
    status = models.CharField(max_length=12, choices=RunStatus.choices, default=RunStatus.PENDING)
    # Why it was skipped, failed or interrupted; the summary once it ends.
    message = models.TextField(blank=True)
    requested_by = models.CharField(max_length=150, blank=True)
    # Set by a cancel (the page, job_cancel): the VMs still running stop, the run ends cancelled.
    cancel_requested = models.BooleanField(default=False)
    cancelled_by = models.CharField(max_length=150, blank=True)
    # The mailed report (the job's report_when): when it went, or why it could not.
    reported_at = models.DateTimeField(null=True, blank=True)
    report_error = models.TextField(blank=True)

    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    # The remotes the run writes to (those that passed their check when it started):
    # {remote uuid: name}; and those left out or dropped, with why: {remote name: why}.
    remotes = models.JSONField(default=dict, blank=True)
    failed_remotes = models.JSONField(default=dict, blank=True)

    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(status=RunStatus.RUNNING),
                name="backups_run_one_running_per_job",
                violation_error_message="This job already has a running run.",
            ),
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                condition=Q(scheduled_for__isnull=False),
                name="backups_run_once_per_moment",
                violation_error_message="This schedule already ran at this moment.",
            ),
        ]
        indexes = [
            # The job page and the run list: a job's runs, newest first.
            models.Index(fields=["job", "-created"], name="backups_run_job_created"),
            # The sweep of dead runs: running rows whose heartbeat is old.
            models.Index(fields=["status", "heartbeat"], name="backups_run_status_beat"),
            # The run list across jobs, filtered by status, newest first.
            models.Index(fields=["status", "-created"], name="backups_run_status_created"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.job.name}" if self.job_id else f"run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("backups:run_detail", args=[self.pk])


class VmBackup(Lifecycle, models.Model):
    """The backup of one VM in one run: its state, and once done its backup timestamp,
    snapshot, metadata files and the reason it failed."""

    statuses = VmBackupStatus

    run = models.ForeignKey(BackupRun, on_delete=models.CASCADE, related_name="vm_backups")
    vm_uuid = models.CharField("VM uuid", max_length=36)
    vm_name = models.CharField("VM", max_length=255, blank=True)
    pool = models.ForeignKey(
        "pools.Pool", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=12, choices=VmBackupStatus.choices, default=VmBackupStatus.PENDING
    )
    error = models.TextField(blank=True)

    timestamp = models.CharField(
        max_length=20, blank=True, help_text="The backup's name on the remotes (UTC)."
    )
    snapshot_uuid = models.CharField(max_length=36, blank=True)
    metadata = models.JSONField(
        default=dict, blank=True, help_text="{remote uuid: path of the committed .json}"
    )
    failed_remotes = models.JSONField(default=dict, blank=True)
    skipped_disks = models.JSONField(default=list, blank=True)
    bytes = models.BigIntegerField(default=0)

    queued_at = models.DateTimeField(null=True, blank=True)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=255, blank=True, help_text="host:pid backing it up.")
    celery_id = models.CharField(max_length=64, blank=True)
    # Which try this is: a VM whose worker died is backed up again (BACKUP_INTERRUPTED_RETRIES)
    # under the next number; every claim and end is conditional on it, so that a worker that
    # was only slow never writes over the next try. The tries before: [{attempt, worker,
    # started, ended, status, error}].
    attempt = models.PositiveIntegerField(default=1)
    earlier_attempts = models.JSONField(default=list, blank=True)
    cancel_requested = models.BooleanField(default=False)

    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["run", "vm_name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "vm_uuid"],
                name="backups_vmbackup_unique_vm_per_run",
                violation_error_message="This VM is already in this run.",
            )
        ]
        indexes = [
            # The fan-out: the next waiting VM of a run; the count of those still open.
            models.Index(fields=["run", "status"], name="backups_vmbackup_run_status"),
            # A VM's history (restore points page, "last backup of this VM").
            models.Index(fields=["vm_uuid", "-ended"], name="backups_vmbackup_vm_ended"),
            # The per-pool limit of exports: the queued and running VM backups of a pool; the
            # run list's pool filter.
            models.Index(fields=["pool", "status"], name="backups_vmbackup_pool_status"),
            # The sweep: running VM backups whose heartbeat is old.
            models.Index(fields=["status", "heartbeat"], name="backups_vmbackup_status_beat"),
        ]

    def __str__(self) -> str:
        return f"{self.vm_name or self.vm_uuid} in run {self.run_id}"

    @property
    def mode(self) -> str:
        """full when any disk was a full, delta when all were deltas, "" before."""
        modes = {disk.mode for disk in self.disks.all()}
        if not modes:
            return ""
        return DiskMode.FULL if DiskMode.FULL in modes else DiskMode.DELTA


class VmBackupDisk(models.Model):
    """One disk of one VM backup: full or delta and why, its size, bytes written, and files."""

    vm_backup = models.ForeignKey(VmBackup, on_delete=models.CASCADE, related_name="disks")
    vdi_uuid = models.CharField("source VDI uuid", max_length=36)
    vdi_name = models.CharField("disk", max_length=255, blank=True)
    userdevice = models.CharField(max_length=16, blank=True)
    snapshot_vdi_uuid = models.CharField(max_length=36, blank=True)
    mode = models.CharField(max_length=8, choices=DiskMode.choices)
    reason_code = models.CharField(max_length=40, blank=True)
    reason = models.TextField(blank=True, help_text="Why a full was a full (or the delta's base).")
    size = models.BigIntegerField(default=0, help_text="Virtual size of the disk.")
    bytes = models.BigIntegerField(default=0, help_text="Bytes written per remote.")
    duration = models.FloatField(default=0.0)
    files = models.JSONField(default=dict, blank=True, help_text="{remote uuid: .vhd path}")
    sha256 = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["vm_backup", "userdevice", "pk"]

    def __str__(self) -> str:
        return f"{self.vdi_name or self.vdi_uuid}: {self.mode}"

    @property
    def file(self) -> str:
        """One file path (the same on every remote), for one-line displays."""
        return next(iter(self.files.values()), "")

    @property
    def speed(self) -> float | None:
        return self.bytes / self.duration if self.duration else None
