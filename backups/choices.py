"""Choices of the backups app: job modes, VM selection, the states of remotes, runs and VMs.

Each status class has a ``final()`` (the states that never change again) so that claims and
sweeps are written once; ``css`` names the badge colour the pages use.
"""

from __future__ import annotations

from django.db import models


def _all_but(choices: type[models.TextChoices], *open_states: str) -> list[str]:
    """The states of ``choices`` other than ``open_states``, in their order: a status class's
    final states, written once for every class."""
    return [state for state in choices if state not in open_states]


class JobMode(models.TextChoices):
    """How a job writes its disks: a VHD chain (delta) or a full VHD every time (full)."""

    DELTA = "delta", "Delta (incremental VHD chain)"
    FULL = "full", "Full (every backup a full VHD)"


class VmSelection(models.TextChoices):
    """How a job chooses its VMs."""

    EXPLICIT = "explicit", "These VMs"
    RULE = "rule", "Every VM matching a rule (pool, tags, power state)"


class PowerStateRule(models.TextChoices):
    """The power states a rule may ask for ("" = any)."""

    ANY = "", "Any power state"
    RUNNING = "Running", "Running"
    HALTED = "Halted", "Halted"


class ReportWhen(models.TextChoices):
    """When a job mails a report of its runs (Xen Orchestra's ``reportWhen``)."""

    NEVER = "never", "Never"
    FAILURE = "failure", "When a run did not fully succeed"
    ALWAYS = "always", "After every run"


class RemoteStatus(models.TextChoices):
    """The outcome of a remote's last check (write test and space)."""

    UNKNOWN = "unknown", "Not checked yet"
    OK = "ok", "Writable"
    FAILED = "failed", "Failed its check"


class Trigger(models.TextChoices):
    """What started a run."""

    SCHEDULE = "schedule", "Schedule"
    PAGE = "page", "Run now (page)"
    COMMAND = "command", "job_run (command)"


class RunStatus(models.TextChoices):
    """Where a backup run stands; the last six are final."""

    PENDING = "pending", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Partial (some VMs or remotes failed)"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    INTERRUPTED = "interrupted", "Interrupted"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def final(cls) -> list[str]:
        return _all_but(cls, cls.PENDING, cls.RUNNING)


class VmBackupStatus(models.TextChoices):
    """Where one VM of a run stands. ``pending``: waiting for a free slot of the job's
    concurrency; ``queued``: its Celery task was sent; the last six are final."""

    PENDING = "pending", "Waiting"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    PARTIAL = "partial", "Partial (a remote was dropped)"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    INTERRUPTED = "interrupted", "Interrupted"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def final(cls) -> list[str]:
        return _all_but(cls, *cls.unfinished())

    @classmethod
    def unfinished(cls) -> list[str]:
        return [cls.PENDING, cls.QUEUED, cls.RUNNING]


class DiskMode(models.TextChoices):
    """How one disk was written in one backup."""

    FULL = "full", "Full"
    DELTA = "delta", "Delta"


class RestoreKind(models.TextChoices):
    """What a restore gives back."""

    DISK_TO_SR = "disk-sr", "A disk, as a new VDI on an SR"
    DISK_TO_FILE = "disk-file", "A disk, as a file on the worker"
    VM = "vm", "The whole VM, as a new VM"


class FileFormat(models.TextChoices):
    """The format of a disk restored to a file."""

    RAW = "raw", "Raw image"
    VHD = "vhd", "VHD (dynamic, one file)"


class RestoreStatus(models.TextChoices):
    PENDING = "pending", "Queued"
    RUNNING = "running", "Running"
    SUCCESS = "success", "Success"
    FAILED = "failed", "Failed"
    INTERRUPTED = "interrupted", "Interrupted"

    @classmethod
    def final(cls) -> list[str]:
        return _all_but(cls, cls.PENDING, cls.RUNNING)


class VerifyLevel(models.TextChoices):
    """What a schedule verifies after each run ("" = nothing)."""

    NONE = "", "No verification"
    CHECK = "check", "Check (metadata, files, VHD chains)"
    DEEP = "deep", "Deep check (also every file's SHA-256)"


class CheckTrigger(models.TextChoices):
    """What started a verification or a restore test."""

    SCHEDULE = "schedule", "After a scheduled run"
    PAGE = "page", "Page"
    COMMAND = "command", "Command"


class CheckStatus(models.TextChoices):
    """Where a verification or a restore test stands; the last four are final.

    ``failed``: it ran and found a problem (a backup that fails verification, a VM that did not
    boot); ``error``: it could not run (the remote or the pool did not answer)."""

    PENDING = "pending", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Passed"
    FAILED = "failed", "Failed"
    ERROR = "error", "Could not run"
    INTERRUPTED = "interrupted", "Interrupted"

    @classmethod
    def final(cls) -> list[str]:
        return _all_but(cls, cls.PENDING, cls.RUNNING)


class ContentStatus(models.TextChoices):
    """What the last deep check found in a file's bytes (backups.engine.verify_report.Content)."""

    OK = "ok", "SHA-256 as recorded (or as first read)"
    MISMATCH = "mismatch", "SHA-256 differs from the recorded one"
    NO_CHECKSUM = "no-checksum", "No SHA-256 recorded"
    UNCHECKED = "unchecked", "Not read yet"
    UNREADABLE = "unreadable", "Could not be read"


#: Badge classes of every status above (``.badge.ok|warn|bad`` of xoweb.css; "" = neutral).
STATUS_CSS = {
    "success": "ok",
    "ok": "ok",
    "passed": "ok",
    "error": "bad",
    "running": "ok",
    "partial": "warn",
    "skipped": "warn",
    "cancelled": "warn",
    "failed": "bad",
    "interrupted": "bad",
}
