"""Backup runs: created (page, command, schedule), claimed once, fanned out one Celery task per
VM (:mod:`backups.services.fanout`: the job's concurrency, the pools' limit of exports), and
finished by the last VM to end, with a status and a summary.

Every step is a conditional UPDATE whose row count says whether this process won (the style of
healthchecks' ``sendalerts``), so a redelivered message or two workers racing never claim a run,
a VM backup or a slot twice:

* a firing of a schedule makes one run per moment (``BackupRun.scheduled_for``, unique);
* a run goes ``pending → running`` only while no other run of its job is running (the
  ``backups_run_one_running_per_job`` constraint backs this up on every database); a run that
  loses is recorded *skipped* with the reason;
* a VM backup goes ``pending → queued`` when a slot is free (``fanout``), ``queued → running``
  once per try (``vm_backups``), and back to ``queued`` under the next try when its worker died
  (``takeover``);
* the run goes ``running → <final>`` once, when none of its VMs is unfinished; then the job's
  report is queued (``reports``).

Before a job's run is claimed, the job's running runs are swept (:mod:`backups.services.sweep`),
so "already running" never sticks to a run whose workers all died.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, Sum
from django.utils import timezone

from backups import tasks as celery_tasks
from backups.choices import RunStatus, Trigger, VmBackupStatus
from backups.models import BackupJob, BackupRun, Schedule, VmBackup
from backups.services import after_run, fanout, reports, selection, sweep
from backups.services import remotes as remote_checks
from tasks import formatting
from tasks.reporter import TaskReporter, attach, no_current_task, task

logger = logging.getLogger(__name__)


# --- creating a run (web process, command, beat) -------------------------------------------------


def request_run(
    job: BackupJob,
    *,
    trigger: str,
    schedule: Schedule | None = None,
    force_full: bool = False,
    requested_by: str = "",
) -> BackupRun:
    """Record a run and queue it on the workers once the transaction commits."""
    run = BackupRun.objects.create(
        job=job,
        schedule=schedule,
        trigger=trigger,
        force_full=force_full,
        requested_by=requested_by[:150],
    )
    transaction.on_commit(lambda: send_start(run))
    return run


def send_start(run: BackupRun) -> None:
    """Send a run's ``start_run`` task, named for people in Flower and the logs."""
    celery_tasks.start_run.apply_async(
        (run.pk,), shadow=f"start run {run.pk} of job {run.job.name}"
    )


def fire(schedule_id: int, fired_at: datetime | None = None) -> BackupRun | None:
    """A firing of a schedule by beat (the ``run_schedule`` task): one run per moment.

    Steps: load the schedule (gone or disabled since beat read it: nothing); the moment this
    firing stands for (``fired_at`` is stamped by beat, xoweb/beat.py); record the run for that
    moment, unless one exists (the same moment fired twice, or this message delivered again
    after its worker died: that run is started, if it still waits, rather than a second one
    made); start it here, in this task.
    """
    schedule = Schedule.objects.select_related("job").filter(pk=schedule_id).first()
    if schedule is None:
        logger.warning("schedule %s is gone: this firing does nothing", schedule_id)
        return None
    if not schedule.enabled:
        logger.info("schedule %s is disabled: this firing does nothing", schedule)
        return None
    moment = schedule.tick_of(fired_at or timezone.now())
    try:
        with transaction.atomic():
            run = BackupRun.objects.create(
                job=schedule.job,
                schedule=schedule,
                trigger=Trigger.SCHEDULE,
                scheduled_for=moment,
                requested_by="beat",
            )
    except IntegrityError:
        run = BackupRun.objects.get(schedule=schedule, scheduled_for=moment)
        logger.info("%s already fired for %s (run %s)", schedule, moment.isoformat(), run.pk)
        if run.status != RunStatus.PENDING:
            return run
    start(run.pk)
    run.refresh_from_db()
    return run


# --- claiming and starting (worker) --------------------------------------------------------------


def _running_of(job_id: int):
    return BackupRun.objects.filter(job_id=job_id, status=RunStatus.RUNNING)


def claim(run: BackupRun) -> bool:
    """``pending → running`` unless the job already has a running run; True when claimed.

    A run that loses to another is recorded *skipped*, with the other run in the reason; a
    redelivered message for a run already claimed (or ended) changes nothing.
    """
    sweep.sweep_runs(_running_of(run.job_id))
    now = timezone.now()
    other_running = _running_of(run.job_id).exclude(pk=run.pk)
    try:
        with transaction.atomic():
            claimed = (
                BackupRun.objects.filter(pk=run.pk, status=RunStatus.PENDING)
                .exclude(Exists(other_running.filter(job_id=OuterRef("job_id"))))
                .update(status=RunStatus.RUNNING, started=now, heartbeat=now)
            )
    except IntegrityError:  # another run of the job was claimed at the same instant
        claimed = 0
    if claimed:
        run.status, run.started, run.heartbeat = RunStatus.RUNNING, now, now
        return True
    other = other_running.order_by("started").first()
    if other is not None:
        when = timezone.localtime(other.started).strftime("%Y-%m-%d %H:%M:%S %Z")
        if BackupRun.objects.filter(pk=run.pk, status=RunStatus.PENDING).update(
            status=RunStatus.SKIPPED,
            started=now,
            ended=now,
            message=f"skipped: job {run.job.name} is already running (run {other.pk}, "
            f"started {when}); a job never runs twice at the same time",
        ):
            ended(run.pk)
    run.refresh_from_db()
    return False


def start(run_id: int) -> None:
    """Start a queued run (the ``start_run`` Celery task, or a schedule's firing).

    Steps: claim it; open its task; check its remotes (the usable ones are written on the run);
    resolve its VMs from the live cache; record one VM backup per VM with a planned task (so the
    run's estimate covers them all); send the first of them to the workers. The run then
    belongs to its VM backups: the last one to end finishes it.
    """
    run = BackupRun.objects.select_related("job", "schedule").filter(pk=run_id).first()
    if run is None:
        logger.warning("run %s is gone: nothing to start", run_id)
        return
    if not claim(run):
        logger.info("run %s not started: %s", run.pk, run.message or run.get_status_display())
        return
    try:
        _prepare(run)
    except Exception as error:
        logger.exception("run %s could not start", run.pk)
        _fail(run, f"the run could not start: {error}")
        return
    fanout.dispatch(run.pk)
    finish_if_done(run.pk)


def _prepare(run: BackupRun) -> None:
    job = run.job
    with no_current_task():
        root = task(f"Backup run of job {job.name}", kind="run", about=run, unit="bytes")
        root.start()
    root.detach()  # its VMs run in other processes, which keep it alive and end it
    run.task_id = root.id
    BackupRun.objects.filter(pk=run.pk).update(task_id=root.id)

    usable, failed = {}, {}
    for remote in job.remotes.order_by("name"):
        if not remote.enabled:
            failed[remote.name] = "disabled"
            continue
        result = remote_checks.check(remote)
        if result.ok:
            usable[str(remote.uuid)] = remote.name
        else:
            failed[remote.name] = result.message
            root.warning(f"remote {remote.name} left out: {result.message}")
    BackupRun.objects.filter(pk=run.pk).update(remotes=usable, failed_remotes=failed)
    run.remotes, run.failed_remotes = usable, failed
    if not usable:
        reasons = "; ".join(f"{name}: {why}" for name, why in failed.items()) or "none chosen"
        raise RuntimeError(f"no remote of the job is usable ({reasons})")

    chosen = selection.resolve(job)
    if not chosen.vms and not chosen.missing:
        _skip(run, f"skipped: {chosen.reason}")
        return
    disks = selection.disks_of(chosen.vms)
    rows = []
    for vm in chosen.vms:
        size = selection.expected_bytes(disks.get(vm.pk, []))
        planned = root.plan(f"Backup of VM {vm.name_label}", kind="vm", total=size, about=vm)
        rows.append(
            VmBackup(run=run, vm_uuid=vm.uuid, vm_name=vm.name_label, pool=vm.pool, task=planned)
        )
    now = timezone.now()
    for vm_uuid, why in chosen.missing.items():
        rows.append(
            VmBackup(
                run=run,
                vm_uuid=vm_uuid,
                status=VmBackupStatus.FAILED,
                error=why,
                started=now,
                ended=now,
            )
        )
        root.error(why)
    VmBackup.objects.bulk_create(rows)
    root.info(f"{len(chosen.vms)} VM(s) to back up to {', '.join(usable.values())}")


# --- the end of a run ----------------------------------------------------------------------------


def vm_ended(vm_backup: VmBackup) -> None:
    """One VM backup of a run has ended: its slots go to the VMs waiting in its run, then in
    the other runs on its pool; the run ends when that was its last VM."""
    try:
        fanout.dispatch(vm_backup.run_id)
        fanout.dispatch_pool(vm_backup.pool_id, besides=vm_backup.run_id)
    finally:
        finish_if_done(vm_backup.run_id)


def finish_if_done(run_id: int) -> bool:
    """End the run when none of its VM backups is unfinished: ``running → <final>`` once.

    A run without any VM backup is still choosing its VMs (``start``): it is never finished
    here (a start that died half-way is the sweep's to interrupt).
    """
    statuses = set(
        VmBackup.objects.filter(run_id=run_id)
        .order_by()
        .values_list("status", flat=True)
        .distinct()
    )
    if not statuses or statuses & set(VmBackupStatus.unfinished()):
        return False
    status, summary = outcome(run_id)
    now = timezone.now()
    # One transaction: the end, the report's request and the checks the schedule asks for. A
    # process that dies in between leaves the run running, and the sweep ends it again with
    # them all; a run is never ended without its report and its checks.
    with transaction.atomic():
        done = BackupRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=status, ended=now, message=summary, heartbeat=now
        )
        if done:
            ended(run_id)
            _record_checks(run_id)
    return bool(done)


def _record_checks(run_id: int) -> None:
    """What the schedule proves after its runs (verification, restore tests), recorded by the
    transaction that ends the run; an error there leaves the run as it ended (its savepoint)."""
    try:
        with transaction.atomic():
            after_run.run_ended(run_id)
    except Exception:
        logger.exception("the checks after run %s could not be queued", run_id)


def outcome(run_id: int) -> tuple[str, str]:
    """The status a finished run takes, and its one-line summary."""
    counts = dict(
        VmBackup.objects.filter(run_id=run_id)
        .values_list("status")
        .annotate(n=Count("pk"))
        .values_list("status", "n")
    )
    written = VmBackup.objects.filter(run_id=run_id).aggregate(total=Sum("bytes"))["total"] or 0
    retried = VmBackup.objects.filter(run_id=run_id, attempt__gt=1).count()
    run = BackupRun.objects.get(pk=run_id)
    total = sum(counts.values())
    good = counts.get(VmBackupStatus.SUCCESS, 0)
    partial = counts.get(VmBackupStatus.PARTIAL, 0)
    skipped = counts.get(VmBackupStatus.SKIPPED, 0)
    interrupted = counts.get(VmBackupStatus.INTERRUPTED, 0)
    cancelled = counts.get(VmBackupStatus.CANCELLED, 0)
    bad = total - good - partial - skipped
    if total == 0:
        status = RunStatus.SKIPPED
    elif run.cancel_requested or cancelled == total:
        status = RunStatus.CANCELLED
    elif good == total:
        status = RunStatus.PARTIAL if run.failed_remotes else RunStatus.SUCCESS
    elif skipped == total:
        status = RunStatus.SKIPPED
    elif good + partial > 0:
        status = RunStatus.PARTIAL
    elif interrupted and interrupted == bad:
        status = RunStatus.INTERRUPTED
    else:
        status = RunStatus.FAILED
    parts = [
        f"{n} {label}"
        for label, n in (
            ("succeeded", good),
            ("partial", partial),
            ("skipped", skipped),
            ("failed", counts.get(VmBackupStatus.FAILED, 0)),
            ("interrupted", interrupted),
            ("cancelled", cancelled),
        )
        if n
    ]
    summary = f"{total} VM(s): {', '.join(parts) or 'none'}; {formatting.size(written)} written"
    if retried:
        summary += f"; {retried} backed up again after their worker died"
    if run.failed_remotes:
        summary += "; remotes left out: " + ", ".join(sorted(run.failed_remotes))
    if run.cancel_requested:
        summary = f"cancelled by {run.cancelled_by or 'a person'}; {summary}"
    return status, summary


def _skip(run: BackupRun, message: str) -> None:
    if BackupRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.SKIPPED, ended=timezone.now(), message=message
    ):
        ended(run.pk)


def _fail(run: BackupRun, message: str) -> None:
    now = timezone.now()
    VmBackup.objects.filter(run_id=run.pk, status=VmBackupStatus.PENDING).update(
        status=VmBackupStatus.CANCELLED, ended=now, error="not started: the run failed"
    )
    if BackupRun.objects.filter(pk=run.pk, status=RunStatus.RUNNING).update(
        status=RunStatus.FAILED, ended=now, message=message
    ):
        ended(run.pk)


def ended(run_id: int) -> None:
    """What follows every end of a run, whoever ended it: its task ends the same way, and the
    job's report is queued (``report_when``)."""
    _end_run_task(run_id)
    reports.queue(run_id)


def _end_run_task(run_id: int) -> None:
    """End the run's task (opened by ``start`` and held by no process) like the run ended."""
    run = BackupRun.objects.filter(pk=run_id).first()
    if run is None or run.task_id is None:
        return
    try:
        root: TaskReporter = attach(run.task_id)
    except Exception:
        return
    if root.status != "running":
        return
    if run.status in (RunStatus.SUCCESS, RunStatus.SKIPPED):
        if run.message:
            root.info(run.message)
        root.succeed()
    elif run.status == RunStatus.PARTIAL:
        root.warning(run.message)
        root.succeed()
    elif run.status == RunStatus.INTERRUPTED:
        root.interrupt(run.message)
    elif run.status == RunStatus.CANCELLED:
        root.cancel(run.message)
    else:
        root.fail(run.message or run.get_status_display())
