"""The report of a run: per VM what happened, per disk the mode and its reason, sizes,
durations and speeds; mailed when the job asks (``report_when``), shown on the run page.

One builder (:func:`build`) feeds both, so the page and the mail say the same. The mail goes
through Django's e-mail settings (``EMAIL_HOST``…) from a short Celery task
(``backups.send_run_report``) queued when the run ends; it is sent once: the task claims the
run's ``reported_at`` with a conditional UPDATE first, and records the error when the SMTP
server refused it (a mail that may have gone is never sent twice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from backups import tasks as celery_tasks
from backups.choices import STATUS_CSS, ReportWhen, RunStatus, VmBackupStatus
from backups.models import BackupRun, VmBackup
from tasks.formatting import duration, size

logger = logging.getLogger(__name__)


def _speed(count: int, seconds: float | None) -> str:
    return f"{size(count / seconds)}/s" if seconds and count else ""


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


class _Written:
    """What a disk, a VM or a whole run wrote, and in how long, as people read it."""

    bytes: int
    seconds: float | None

    @property
    def bytes_text(self) -> str:
        return size(self.bytes)

    @property
    def duration_text(self) -> str:
        return duration(self.seconds)

    @property
    def speed_text(self) -> str:
        return _speed(self.bytes, self.seconds)


@dataclass
class DiskReport(_Written):
    name: str
    userdevice: str
    mode: str
    reason: str
    size: int  # virtual size
    bytes: int  # written (per remote)
    seconds: float
    file: str

    @property
    def size_text(self) -> str:
        return size(self.size)


@dataclass
class VmReport(_Written):
    pk: int
    name: str
    uuid: str
    status: str
    error: str
    worker: str
    attempt: int
    earlier_attempts: list[dict]
    seconds: float | None
    bytes: int
    disks: list[DiskReport] = field(default_factory=list)
    skipped_disks: list[str] = field(default_factory=list)
    failed_remotes: dict[str, str] = field(default_factory=dict)

    @property
    def css(self) -> str:
        return STATUS_CSS.get(self.status, "")

    @property
    def open(self) -> bool:
        """Not ended yet (it can still be cancelled)."""
        return self.status in VmBackupStatus.unfinished()

    @property
    def what_happened(self) -> str:
        """One sentence: the status and, when it did not succeed, why."""
        text = {
            "success": "backed up",
            "partial": "backed up, but not to every remote",
            "failed": "failed",
            "skipped": "skipped",
            "interrupted": "interrupted",
            "cancelled": "cancelled",
            "pending": "waiting for a free slot",
            "queued": "queued on the workers",
            "running": f"being backed up by {self.worker}",
        }.get(self.status, self.status)
        if self.error and self.status not in ("success", "running"):
            text = f"{text}: {self.error}"
        return text


@dataclass
class RunReport(_Written):
    run_id: int
    job: str
    schedule: str
    trigger: str
    status: str
    message: str
    started: datetime | None
    ended: datetime | None
    url: str
    vms: list[VmReport] = field(default_factory=list)
    failed_remotes: dict[str, str] = field(default_factory=dict)

    @property
    def seconds(self) -> float | None:
        return _seconds(self.started, self.ended)

    @property
    def bytes(self) -> int:
        return sum(vm.bytes for vm in self.vms)

    @property
    def subject(self) -> str:
        return f"[xoweb] backup {self.job}: {self.status} (run {self.run_id})"


def vm_report(vm_backup: VmBackup) -> VmReport:
    """One VM backup's part of the report (its disks prefetched or not)."""
    return VmReport(
        pk=vm_backup.pk,
        name=vm_backup.vm_name or vm_backup.vm_uuid,
        uuid=vm_backup.vm_uuid,
        status=vm_backup.status,
        error=vm_backup.error,
        worker=vm_backup.worker,
        attempt=vm_backup.attempt,
        earlier_attempts=list(vm_backup.earlier_attempts),
        seconds=_seconds(vm_backup.started, vm_backup.ended),
        bytes=vm_backup.bytes,
        disks=[
            DiskReport(
                name=disk.vdi_name or disk.vdi_uuid,
                userdevice=disk.userdevice,
                mode=disk.mode,
                reason=disk.reason,
                size=disk.size,
                bytes=disk.bytes,
                seconds=disk.duration,
                file=disk.file,
            )
            for disk in vm_backup.disks.all()
        ],
        skipped_disks=[why for _vdi, why in vm_backup.skipped_disks],
        failed_remotes=dict(vm_backup.failed_remotes),
    )


def build(run: BackupRun) -> RunReport:
    """The report of ``run`` (three queries whatever the number of VMs and disks)."""
    vm_backups = run.vm_backups.prefetch_related("disks").order_by("vm_name", "pk")
    return RunReport(
        run_id=run.pk,
        job=run.job.name,
        schedule=run.schedule.name if run.schedule_id and run.schedule else "",
        trigger=run.get_trigger_display(),
        status=run.status,
        message=run.message,
        started=run.started,
        ended=run.ended,
        url=f"{settings.SITE_URL}{run.get_absolute_url()}",
        vms=[vm_report(vm_backup) for vm_backup in vm_backups],
        failed_remotes=dict(run.failed_remotes),
    )


def wanted(run: BackupRun) -> bool:
    """Whether the run's job wants its report mailed."""
    job = run.job
    if job.report_when == ReportWhen.NEVER or not job.report_to:
        return False
    return job.report_when == ReportWhen.ALWAYS or run.status != RunStatus.SUCCESS


def queue(run_id: int) -> None:
    """Queue the report of an ended run on the workers, when its job wants one."""
    run = BackupRun.objects.select_related("job").filter(pk=run_id).first()
    if run is None or not run.is_final or not wanted(run):
        return
    transaction.on_commit(
        lambda: celery_tasks.send_run_report.apply_async(
            (run_id,), shadow=f"report of run {run_id} of job {run.job.name}"
        )
    )


def send(run_id: int) -> str:
    """Mail the report of a run, once; returns what happened (the task's result)."""
    run = BackupRun.objects.select_related("job", "schedule").filter(pk=run_id).first()
    if run is None or not wanted(run):
        return "no report wanted"
    claimed = BackupRun.objects.filter(pk=run_id, reported_at__isnull=True).update(
        reported_at=timezone.now()
    )
    if not claimed:
        return "already sent"
    report = build(run)
    context = {"report": report}
    mail = EmailMultiAlternatives(
        subject=report.subject,
        body=render_to_string("backups/report_email.txt", context),
        to=list(run.job.report_to),
    )
    mail.attach_alternative(render_to_string("backups/report_email.html", context), "text/html")
    try:
        mail.send()
    except Exception as error:  # SMTP refused, unreachable, timed out: say it on the run
        message = f"the report could not be mailed: {error or type(error).__name__}"
        logger.warning("run %s: %s", run_id, message)
        BackupRun.objects.filter(pk=run_id).update(report_error=message[:2000])
        return message
    return f"report mailed to {', '.join(run.job.report_to)}"
