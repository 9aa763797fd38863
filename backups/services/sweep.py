"""The sweep of runs: what a dead process or a lost message left is noticed and carried on.

Beat runs it every 30 seconds (the periodic task ``backups: sweep runs``), and the claim of a
job's run sweeps that job's running runs first. For every running run:

1. each running VM backup whose holder is dead (a process of this host that is gone, or a
   heartbeat older than ``BACKUP_HEARTBEAT_TIMEOUT``) is taken over
   (:mod:`backups.services.takeover`: backed up again, or ended with the reason);
2. a VM backup queued for longer than twice the broker's visibility timeout has lost its
   message (Redis restarted without its data, a message deleted): it is sent again (a message
   delivered twice is harmless: the claim happens once);
3. the slots that processes which died left free are given to waiting VMs (``fanout``);
4. a run with nothing unfinished is finished; a run that has no VM backup at all and whose
   heartbeat stopped died while it started: it is interrupted;
5. a run whose VMs wait (pending for a slot, queued behind other work on the broker) has no
   process beating for its task: the sweep, which has just checked that nothing of it is
   dead, beats for it, so that the tasks' own sweep does not take a run that waits for one
   that died (the period, 30 s, is half ``TASK_INTERRUPTED_AFTER_SECONDS``).

And every run still *pending* that long lost its ``start_run`` message: it is sent again; so
are the reports and the checks that follow ended runs (:mod:`backups.services.followups`).
Nothing here waits on XAPI or on a remote; every change is a conditional UPDATE, so two sweeps
at once, or a sweep beside a worker, never do a thing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from backups.choices import RunStatus, VmBackupStatus
from backups.models import BackupRun, VmBackup
from backups.services import fanout, followups, runs, takeover
from backups.services.heartbeat import silence_cutoff, why_dead
from tasks.choices import TaskStatus
from tasks.models import Task

logger = logging.getLogger(__name__)


@dataclass
class Swept:
    """What one sweep did (the periodic task returns it as text)."""

    taken_over: int = 0
    resent: int = 0
    dispatched: int = 0
    finished: int = 0

    def __str__(self) -> str:
        return (
            f"{self.taken_over} VM backup(s) of dead workers taken over, {self.resent} lost "
            f"message(s) sent again, {self.dispatched} VM(s) sent to free slots, "
            f"{self.finished} run(s) finished"
        )


def lost_after() -> timedelta:
    """How long a message may wait unclaimed before it counts as lost: twice the broker's
    visibility timeout (by then Redis would have handed out a message it still held)."""
    return timedelta(seconds=2 * settings.BROKER_VISIBILITY_SECONDS)


def sweep(now=None) -> Swept:
    """Sweep every running run, and resend the start of runs whose message was lost."""
    now = now or timezone.now()
    swept = sweep_runs(BackupRun.objects.filter(status=RunStatus.RUNNING), now)
    for run in BackupRun.objects.filter(
        status=RunStatus.PENDING, created__lt=now - lost_after()
    ).select_related("job"):
        logger.warning("run %s waited %s without starting: sent again", run.pk, now - run.created)
        runs.send_start(run)
        swept.resent += 1
    swept.resent += followups.resend(now, lost_after())
    return swept


def sweep_runs(running: QuerySet, now=None) -> Swept:
    """Steps 1 to 4 of the module docstring, for the runs of ``running``."""
    now = now or timezone.now()
    swept = Swept()
    run_ids = list(running.values_list("pk", flat=True))
    if not run_ids:
        return swept
    for vm_backup in _maybe_dead(run_ids, now):
        why = why_dead(vm_backup, now)
        if why and takeover.take_over(vm_backup, why):
            swept.taken_over += 1
    lost = VmBackup.objects.filter(
        run_id__in=run_ids, status=VmBackupStatus.QUEUED, queued_at__lt=now - lost_after()
    )
    for vm_backup in lost:
        # Sent again at most once per period: the claim of the send is this conditional write.
        if VmBackup.objects.filter(
            pk=vm_backup.pk, status=VmBackupStatus.QUEUED, queued_at=vm_backup.queued_at
        ).update(queued_at=now):
            fanout.send(vm_backup.pk)
            swept.resent += 1
    for run_id in run_ids:
        swept.dispatched += fanout.dispatch(run_id)
        if runs.finish_if_done(run_id):
            swept.finished += 1
    swept.finished += _interrupt_runs_that_died_starting(run_ids, now)
    _beat_for_waiting_runs(run_ids, now)
    return swept


def _beat_for_waiting_runs(run_ids: list[int], now) -> None:
    """Step 5: touch the task of each running run that still has VM backups to do."""
    waiting = (
        BackupRun.objects.filter(pk__in=run_ids, status=RunStatus.RUNNING, task__isnull=False)
        .filter(vm_backups__status__in=VmBackupStatus.unfinished())
        .values_list("task_id", flat=True)
        .distinct()
    )
    Task.objects.filter(pk__in=list(waiting), status=TaskStatus.RUNNING).update(updated=now)


def _maybe_dead(run_ids: list[int], now) -> list[VmBackup]:
    """Running VM backups that may have a dead holder: silent ones, and those of this host
    (whose process may be proven gone at once)."""
    cutoff = silence_cutoff(now)
    return list(
        VmBackup.objects.filter(run_id__in=run_ids, status=VmBackupStatus.RUNNING)
        .filter(
            Q(heartbeat__lt=cutoff)
            | Q(heartbeat__isnull=True)
            | Q(worker__startswith=f"{settings.HOST_NAME}:")
        )
        .select_related("run", "run__job", "task")
    )


def _interrupt_runs_that_died_starting(run_ids: list[int], now) -> int:
    """Running runs with no VM backup whose heartbeat stopped: ``start`` died half-way."""
    cutoff = silence_cutoff(now)
    dead = (
        BackupRun.objects.filter(pk__in=run_ids, status=RunStatus.RUNNING)
        .filter(Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True))
        .exclude(vm_backups__isnull=False)
    )
    count = 0
    for run_id in list(dead.values_list("pk", flat=True)):
        if BackupRun.objects.filter(pk=run_id, status=RunStatus.RUNNING).update(
            status=RunStatus.INTERRUPTED,
            ended=now,
            message=(
                "interrupted: the worker starting it stopped before it had chosen its VMs "
                f"(no heartbeat for {settings.BACKUP_HEARTBEAT_TIMEOUT} s)"
            ),
        ):
            runs.ended(run_id)
            count += 1
    return count
