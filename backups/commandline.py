"""What the backups commands share: finding rows by what a script types, one-line errors that
name the option, and the JSON shapes scripts rely on (kept here so pages and commands agree)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError
from django.db.models import Q

from backups.models import BackupJob, BackupRun, Remote, RestorePoint, VmBackup

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def form_error(what: str, form, option_of_field: dict[str, str]) -> CommandError:
    """The first error of ``form`` as one line naming the command-line option to fix."""
    for field, messages in form.errors.items():
        option = option_of_field.get(field, field if field != "__all__" else "input")
        return CommandError(f"{what}: {option}: {messages[0]}")
    return CommandError(f"{what}: invalid input")


def parse_vm(text: str) -> str:
    """A VM uuid as typed after ``--vm`` ("" when none), or a one-line error naming it."""
    text = text.strip().lower()
    if text and not _UUID.match(text):
        raise CommandError(f"--vm: {text!r} is not a VM uuid (e.g. 4d7e…-…)")
    return text


def parse_merges(text: str) -> int | None:
    """``--merges N``: at most N merges per VM folder (None when not given: all)."""
    if text == "":
        return None
    if not text.strip().isdigit():
        raise CommandError(f"--merges: {text!r} is not a whole number of 0 or more")
    return int(text)


def add_clean_pass_options(parser, *, vm_help: str, dry_run_help: str) -> None:
    """``--vm``, ``--dry-run``, ``--merges`` and ``--json``: the options of the commands that
    end in a clean pass (``backup_clean``, ``backup_prune``), read by :func:`parse_vm` and
    :func:`parse_merges`."""
    parser.add_argument("--vm", default="", help=vm_help)
    parser.add_argument("--dry-run", action="store_true", help=dry_run_help)
    parser.add_argument("--merges", default="", help="merges per VM folder at most (default: all)")
    parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")


def clean_pass_lines(result) -> list[str]:
    """A clean pass of one remote as text: a line per finding (``VM: [kind] path: message →
    action``), then its summary."""
    from backups.services import maintenance

    lines = []
    for report in result.reports:
        for finding in report.findings:
            lines.append(
                f"{report.vm_uuid}: [{finding.kind}] {finding.path}: {finding.message} → "
                f"{finding.action}"
            )
    return [*lines, maintenance.summarize(result)]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


def find_job(text: str) -> BackupJob:
    """A job by name (any case), uuid or id."""
    query = Q(name__iexact=text)
    if text.isdigit():
        query |= Q(pk=int(text))
    elif len(text) == 36:
        query |= Q(uuid=text)
    job = BackupJob.objects.filter(query).first()
    if job is None:
        raise CommandError(f"JOB: no job {text!r} (see manage.py job_list)")
    return job


def find_remote(text: str, option: str = "--remote") -> Remote:
    remote = Remote.objects.filter(name__iexact=text).first()
    if remote is None:
        names = ", ".join(Remote.objects.values_list("name", flat=True)) or "none yet"
        raise CommandError(f"{option}: no remote {text!r} (remotes: {names})")
    return remote


def remote_json(remote: Remote) -> dict[str, Any]:
    return {
        "id": remote.pk,
        "uuid": str(remote.uuid),
        "name": remote.name,
        "path": remote.path,
        "enabled": remote.enabled,
        "status": remote.status,
        "message": remote.status_message,
        "checked_at": remote.checked_at,
        "total": remote.space_total,
        "used": remote.space_used,
        "free": remote.space_free,
    }


def job_json(job: BackupJob) -> dict[str, Any]:
    return {
        "id": job.pk,
        "uuid": str(job.uuid),
        "name": job.name,
        "mode": job.mode,
        "vms": job.vm_uuids if job.vm_selection == "explicit" else None,
        "rule": None
        if job.vm_selection == "explicit"
        else {
            "pool": job.pool.name if job.pool else None,
            "tags": job.vm_tags,
            "power_state": job.vm_power_state or None,
        },
        "remotes": [remote.name for remote in job.remotes.all()],
        "full_interval": job.full_interval,
        "max_chain_length": job.max_chain_length,
        "concurrency": job.concurrency,
        "vm_timeout": job.vm_timeout,
        "report_when": job.report_when,
        "report_to": job.report_to,
        "schedules": [schedule_json(schedule) for schedule in job.schedules.all()],
    }


def schedule_json(schedule) -> dict[str, Any]:
    return {
        "id": schedule.pk,
        "uuid": str(schedule.uuid),
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "description": schedule.description,
        "enabled": schedule.enabled,
        "retention": schedule.retention,
        "keep_daily": schedule.retention_daily,
        "keep_weekly": schedule.retention_weekly,
        "keep_monthly": schedule.retention_monthly,
        "keep_yearly": schedule.retention_yearly,
        "snapshot_retention": schedule.snapshot_retention,
        "force_full": schedule.force_full,
        "verify": schedule.verify,
        "health_check": schedule.health_check,
        "health_check_sr": schedule.health_check_sr,
        "health_check_timeout": schedule.health_check_timeout,
    }


def jobs_for_listing():
    return BackupJob.objects.select_related("pool").prefetch_related("remotes", "schedules")


def find_run(text: str) -> BackupRun:
    """A run by its id (as the pages and ``run_list`` show it)."""
    run = None
    if text.isdigit():
        run = BackupRun.objects.select_related("job", "schedule").filter(pk=int(text)).first()
    if run is None:
        raise CommandError(f"RUN: no run {text!r} (see manage.py run_list)")
    return run


def runs_for_listing(job: BackupJob | None = None, status: str = ""):
    """Runs newest first with their job, schedule and VM backups (three queries in all)."""
    runs = BackupRun.objects.select_related("job", "schedule").prefetch_related("vm_backups")
    if job is not None:
        runs = runs.filter(job=job)
    if status:
        runs = runs.filter(status=status)
    return runs.order_by("-created", "-pk")


def run_json(run: BackupRun, *, disks: bool = True) -> dict[str, Any]:
    """``run_show --json``, ``job_run --wait --json``: ``{"id", "job", "schedule", "trigger",
    "status", "started", "ended", "vms": [{"uuid", "status", "worker", "error", "disks":
    [{"vdi", "mode", "reason", "bytes"…}]}]}`` and more (``run`` is the id too, for older
    scripts); without ``disks``, what ``run_list --json`` gives per run."""
    if disks:
        vm_backups = run.vm_backups.prefetch_related("disks").order_by("vm_name", "pk")
    else:
        vm_backups = sorted(run.vm_backups.all(), key=lambda row: (row.vm_name, row.pk))
    return {
        "id": run.pk,
        "run": run.pk,
        "job": run.job.name,
        "schedule": run.schedule.name if run.schedule else None,
        "trigger": run.trigger,
        "status": run.status,
        "message": run.message,
        "scheduled_for": run.scheduled_for,
        "started": run.started,
        "ended": run.ended,
        "failed_remotes": run.failed_remotes,
        "cancelled_by": run.cancelled_by or None,
        "vms": [vm_backup_json(vm_backup, disks=disks) for vm_backup in vm_backups],
    }


def vm_backup_json(vm_backup: VmBackup, *, disks: bool = True) -> dict[str, Any]:
    found = {
        "uuid": vm_backup.vm_uuid,
        "name": vm_backup.vm_name,
        "status": vm_backup.status,
        "worker": vm_backup.worker,
        "attempt": vm_backup.attempt,
        "earlier_attempts": vm_backup.earlier_attempts,
        "error": vm_backup.error,
        "started": vm_backup.started,
        "ended": vm_backup.ended,
        "bytes": vm_backup.bytes,
    }
    if not disks:
        return found
    found.update(
        timestamp=vm_backup.timestamp,
        failed_remotes=vm_backup.failed_remotes,
        skipped_disks=vm_backup.skipped_disks,
        disks=[
            {
                "vdi": disk.vdi_uuid,
                "name": disk.vdi_name,
                "mode": disk.mode,
                "reason": disk.reason,
                "reason_code": disk.reason_code,
                "size": disk.size,
                "bytes": disk.bytes,
                "duration": disk.duration,
                "file": disk.file,
                "files": disk.files,
                "sha256": disk.sha256,
            }
            for disk in vm_backup.disks.all()
        ],
    )
    return found


def points_for_listing(vm: str = "", remote: Remote | None = None):
    points = RestorePoint.objects.select_related("remote").order_by("taken_at", "pk")
    if vm:
        points = points.filter(vm_uuid=vm)
    if remote is not None:
        points = points.filter(remote=remote)
    return points


def point_json(point: RestorePoint) -> dict[str, Any]:
    """``backup_list --json``: ``{"id", "vm", "remote", "timestamp", "mode", "disks": [{"vdi",
    "file"}]}`` and more."""
    return {
        "id": point.pk,
        "vm": point.vm_uuid,
        "vm_name": point.vm_name,
        "remote": point.remote.name,
        "timestamp": point.timestamp,
        "taken_at": point.taken_at,
        "mode": point.mode,
        "size": point.size,
        "job": point.job_uuid,
        "schedule": point.schedule_uuid,
        "path": point.path,
        "disks": [
            {
                "vdi": disk.get("vdi"),
                "name": disk.get("name", ""),
                "file": disk.get("file"),
                "differencing": disk.get("differencing"),
                "sha256": disk.get("sha256", ""),
            }
            for disk in point.disks
        ],
    }


def wait_for(
    reload: Callable[[], Any], done: Callable[[Any], bool], *, timeout: float, what: str
) -> Any:
    """Poll ``reload()`` until ``done(row)``; CommandError after ``timeout`` seconds (0 = none)."""
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        row = reload()
        if done(row):
            return row
        if deadline is not None and time.monotonic() > deadline:
            raise CommandError(f"--timeout: {what} still not finished after {timeout:g} s")
        time.sleep(0.5)


def verification_json(verification, report=None) -> dict[str, Any]:
    """``backup_check --json``, per remote: ``{"remote", "verification", "status", "deep",
    "message", "bytes_read", "skipped", "backups": [{"path", "vm", "timestamp", "ok",
    "problems", "chains"}], "files": [{"path", "ok", "errors", "warnings", "content",
    "sha256", "expected_sha256"}]}``; ``report`` is the engine's (None when it could not run)."""
    data: dict[str, Any] = {
        "remote": verification.remote.name,
        "verification": verification.pk,
        "status": verification.status,
        "deep": verification.deep,
        "message": verification.message,
        "bytes_read": verification.bytes_read,
        "skipped": verification.skipped,
        "duration": report.duration if report is not None else None,
        "backups": [],
        "files": [],
    }
    if report is None:
        return data
    data["backups"] = [
        {
            "path": backup.path,
            "vm": backup.vm_uuid,
            "vm_name": backup.vm_name,
            "timestamp": backup.timestamp,
            "ok": report.ok(backup),
            "problems": report.problems(backup),
            "chains": backup.chains,
        }
        for backup in report.backups
    ]
    data["files"] = [
        {
            "path": file.path,
            "ok": file.ok,
            "errors": file.errors,
            "warnings": file.warnings,
            "content": str(file.content),
            "sha256": file.sha256,
            "expected_sha256": file.expected_sha256,
            "size": file.size,
        }
        for file in report.files.values()
    ]
    return data
