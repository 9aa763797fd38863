"""Backup jobs and their schedules.

A job says what to back up (VMs by uuid, or a rule on the pool cache), where (remotes) and how
(mode, fulls, chain length, concurrency, timeout). A schedule says when (cron and time zone),
how many backups to keep, and whether its runs are always fulls. The UUIDs of both are Xen
Orchestra's ``jobId`` and ``scheduleId``: the ``vdis/<job uuid>/`` folder on the remotes and the
tags on our snapshots, so they never change.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from backups import cron
from backups.choices import JobMode, PowerStateRule, ReportWhen, VerifyLevel, VmSelection


class BackupJob(models.Model):
    """One backup job: a set of VMs, the remotes they go to, and how."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=100)
    mode = models.CharField(max_length=8, choices=JobMode.choices, default=JobMode.DELTA)

    vm_selection = models.CharField(
        "VMs", max_length=10, choices=VmSelection.choices, default=VmSelection.EXPLICIT
    )
    # Explicit VMs by uuid (not a foreign key to the cache: a VM's cached row goes away with a
    # lost pool, and the job must not silently forget it).
    vm_uuids = models.JSONField("VM uuids", default=list, blank=True)
    pool = models.ForeignKey(
        "pools.Pool",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="backup_jobs",
        help_text="Rule: the pool whose VMs are backed up.",
    )
    vm_tags = models.JSONField(
        "VM tags",
        default=list,
        blank=True,
        help_text="Rule: VMs with any of these tags (none: all).",
    )
    vm_power_state = models.CharField(
        "power state", max_length=10, choices=PowerStateRule.choices, default="", blank=True
    )

    remotes = models.ManyToManyField("backups.Remote", related_name="jobs")
    full_interval = models.PositiveIntegerField(
        "full every N backups",
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="A full when the chain reaches N-1 deltas (Xen Orchestra's key backup "
        "interval); 0 = never.",
    )
    max_chain_length = models.PositiveIntegerField(
        "maximum chain length",
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="A full when a disk's delta chain reaches this length; 0 = no limit.",
    )
    concurrency = models.PositiveIntegerField(
        default=2,
        validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text="VMs backed up at the same time.",
    )
    vm_timeout = models.PositiveIntegerField(
        "per-VM timeout (seconds)",
        default=0,
        validators=[MaxValueValidator(7 * 24 * 3600)],
        help_text="A VM backup taking longer fails; 0 = no limit.",
    )
    report_when = models.CharField(
        "mail a report",
        max_length=8,
        choices=ReportWhen.choices,
        default=ReportWhen.NEVER,
    )
    report_to = models.JSONField(
        "report recipients",
        default=list,
        blank=True,
        help_text="E-mail addresses the run reports go to.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="backups_job_unique_name",
                violation_error_message="A job with this name already exists.",
            )
        ]
        permissions = [("run_backupjob", "Can run a backup job now or cancel its run")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("backups:job_detail", args=[self.pk])

    def clean(self) -> None:
        if self.vm_selection == VmSelection.EXPLICIT:
            if not self.vm_uuids:
                raise ValidationError({"vm_uuids": "choose at least one VM"})
        elif self.vm_selection == VmSelection.RULE and self.pool_id is None:
            raise ValidationError({"pool": "a rule needs a pool"})
        if self.report_when != ReportWhen.NEVER and not self.report_to:
            raise ValidationError(
                {"report_to": "enter an address to mail the reports to, or choose never"}
            )

    def describe_selection(self) -> str:
        if self.vm_selection == VmSelection.EXPLICIT:
            count = len(self.vm_uuids)
            return f"{count} VM{'s' if count != 1 else ''}"
        parts = [f"VMs of pool {self.pool.name if self.pool else '(deleted pool)'}"]
        if self.vm_tags:
            parts.append("tagged " + " or ".join(self.vm_tags))
        if self.vm_power_state:
            parts.append(self.vm_power_state.lower())
        return ", ".join(parts)


def _default_timezone() -> str:
    return settings.TIME_ZONE


class Schedule(models.Model):
    """When a job runs: a cron expression in a time zone, with its own retention and the
    choice to make every backup of this schedule a full (e.g. a Sunday full beside nightly
    deltas)."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey(BackupJob, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    cron = models.CharField(
        "cron",
        max_length=100,
        help_text="minute hour day-of-month month day-of-week, e.g. 0 1 * * * (01:00 daily)",
    )
    timezone = models.CharField("time zone", max_length=64, default=_default_timezone)
    enabled = models.BooleanField(default=True)
    retention = models.PositiveIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="The newest backups of this schedule kept on each remote.",
    )
    # Long-term retention (docs/maintenance.md §2): beyond the newest `retention`, the newest
    # backup of each of the last N days, ISO weeks, months and years, in the schedule's zone.
    retention_daily = models.PositiveIntegerField(
        "keep daily",
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="Also keep the newest backup of each of this many more days (0: none).",
    )
    retention_weekly = models.PositiveIntegerField(
        "keep weekly",
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="… of this many more weeks (ISO weeks, Monday first).",
    )
    retention_monthly = models.PositiveIntegerField(
        "keep monthly",
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="… of this many more months.",
    )
    retention_yearly = models.PositiveIntegerField(
        "keep yearly",
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="… of this many more years.",
    )
    snapshot_retention = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(1000)],
        help_text="Snapshots of this schedule kept on the pool (the next delta's base is always "
        "kept).",
    )
    force_full = models.BooleanField(
        "force full", default=False, help_text="Every backup of this schedule is a full."
    )
    # What is proven after each run of this schedule (docs/verification.md §1, §3).
    verify = models.CharField(
        "verify after each run",
        max_length=5,
        choices=VerifyLevel.choices,
        default=VerifyLevel.NONE,
        blank=True,
        help_text="Check the run's VMs' backups on its remotes: every metadata file, every VHD "
        "and its chain; a deep check also reads every file and compares its SHA-256.",
    )
    health_check = models.BooleanField(
        "restore test after each run",
        default=False,
        help_text="Restore the new backup of each VM as a new VM (without network) on the SR "
        "below, start it, wait until it runs, then destroy it.",
    )
    health_check_sr = models.CharField(
        "restore test SR (uuid)",
        max_length=36,
        blank=True,
        help_text="Where the restore test creates its VM.",
    )
    health_check_timeout = models.PositiveIntegerField(
        "restore test timeout (seconds)",
        default=600,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 3600)],
        help_text="How long the restored VM may take to run after its start.",
    )
    # The django-celery-beat entry that fires this schedule, kept in step by
    # backups.scheduling (one entry per schedule; disabled with it, deleted with it).
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="backup_schedule",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "name"]
        constraints = [
            models.UniqueConstraint(
                "job",
                Lower("name"),
                name="backups_schedule_unique_name_per_job",
                violation_error_message="This job already has a schedule with this name.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.job.name} / {self.name}" if self.job_id else self.name

    def clean(self) -> None:
        errors = {}
        try:
            self.cron = cron.normalise_cron(self.cron or "")
        except cron.CronError as error:
            errors["cron"] = str(error)
        try:
            self.timezone = cron.normalise_timezone(self.timezone or "")
        except cron.CronError as error:
            errors["timezone"] = str(error)
        if self.health_check and not (self.health_check_sr or "").strip():
            errors["health_check_sr"] = "a restore test needs an SR: choose one"
        if errors:
            raise ValidationError(errors)

    @property
    def description(self) -> str:
        """The cron in words, e.g. "At 01:00, Monday through Friday (Europe/Paris)"."""
        return f"{cron.describe(self.cron)} ({self.timezone})"

    def next_runs(self, after, count: int = 3):
        return cron.next_runs(self.cron, self.timezone, after, count)

    @property
    def retention_text(self) -> str:
        """ "the newest 7, and one per day for 7 days (Europe/Paris)"."""
        parts = [f"the newest {self.retention}"]
        buckets = [
            f"per {period} for {count} {period}{'s' if count != 1 else ''}"
            for period, count in (
                ("day", self.retention_daily),
                ("week", self.retention_weekly),
                ("month", self.retention_monthly),
                ("year", self.retention_yearly),
            )
            if count
        ]
        if buckets:
            parts.append("one " + ", ".join(buckets))
        return ", and ".join(parts)

    def tick_of(self, fired_at):
        """The moment of this schedule that a firing at ``fired_at`` stands for."""
        return cron.tick_of(self.cron, self.timezone, fired_at)
