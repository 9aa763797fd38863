"""``manage.py check_workers [--timeout S] [--json]``: every Celery worker with its queues and
the VMs it is backing up, and whether one of them answers a task of the default queue.

Steps: ask every worker through the broker's control channel which queues it consumes and
which tasks it runs (Celery's ``inspect``); name the VM backups among those tasks from the run
rows; list the VM backups the rows say are running on no worker that answered (a host that
stopped: the sweep hands them to another after ``BACKUP_HEARTBEAT_TIMEOUT``); finally send a
ping task through the default queue and say which worker ran it.
"""

from __future__ import annotations

import json

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from backups.models import VmBackup
from xoweb.celery import app
from xoweb.diagnostics import ping

MAX_TIMEOUT = 3600
INSPECT_SECONDS = 1.0
BACKUP_VM = "backups.tasks.backup_vm"


def _vm_backup_of(task: dict) -> int | None:
    """The VM backup a running Celery task works on, if it is a VM's backup."""
    if task.get("type", task.get("name")) != BACKUP_VM:
        return None
    args = task.get("args") or []
    return args[0] if args and isinstance(args[0], int) else None


def workers(timeout: float) -> list[dict]:
    """Every worker that answered: its name, queues, processes and the VMs it backs up."""
    # Each question waits its whole timeout for the answers (Celery cannot know how many
    # workers there are): one second is plenty for workers that are up.
    inspect = app.control.inspect(timeout=min(timeout, INSPECT_SECONDS))
    active = inspect.active() or {}
    ids = [pk for tasks in active.values() for task in tasks if (pk := _vm_backup_of(task))]
    running = {
        vm_backup.pk: vm_backup
        for vm_backup in VmBackup.objects.filter(pk__in=ids).select_related("run__job")
    }
    queues = inspect.active_queues() or {}
    stats = inspect.stats() or {}
    found = []
    for name in sorted(set(queues) | set(active)):
        vms = []
        for task in active.get(name, []):
            vm_backup = running.get(_vm_backup_of(task))
            if vm_backup is None:
                continue
            since = (timezone.now() - (vm_backup.started or timezone.now())).total_seconds()
            vms.append(
                {
                    "vm": vm_backup.vm_name or vm_backup.vm_uuid,
                    "uuid": vm_backup.vm_uuid,
                    "run": vm_backup.run_id,
                    "job": vm_backup.run.job.name,
                    "attempt": vm_backup.attempt,
                    "pid": task.get("worker_pid"),
                    "seconds": round(since),
                }
            )
        pool = (stats.get(name) or {}).get("pool") or {}
        found.append(
            {
                "name": name,
                "queues": sorted(queue["name"] for queue in queues.get(name, [])),
                "processes": pool.get("max-concurrency"),
                "pid": (stats.get(name) or {}).get("pid"),
                "backing_up": vms,
            }
        )
    return found


class Command(BaseCommand):
    help = "List the Celery workers (queues, VMs being backed up) and check that one answers."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")
        parser.add_argument("--json", action="store_true", help="print JSON, for scripts")

    def handle(self, *args, timeout: float, **options) -> None:
        if not 0.1 <= timeout <= MAX_TIMEOUT:  # also refuses nan
            raise CommandError(f"--timeout: give seconds from 0.1 to {MAX_TIMEOUT}, not {timeout}")
        listed = workers(timeout)
        seen = {vm["uuid"] + str(vm["run"]) for worker in listed for vm in worker["backing_up"]}
        orphans = [
            {
                "vm": vm_backup.vm_name or vm_backup.vm_uuid,
                "run": vm_backup.run_id,
                "worker": vm_backup.worker,
                "heartbeat": vm_backup.heartbeat,
            }
            for vm_backup in VmBackup.objects.filter(status="running").order_by("pk")
            if vm_backup.vm_uuid + str(vm_backup.run_id) not in seen
        ]
        answer, error = self._ping(timeout)
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {"workers": listed, "not_on_a_live_worker": orphans, "ping": answer},
                    indent=2,
                    default=str,
                )
            )
        else:
            self._print(listed, orphans, answer)
        if error:
            raise CommandError(error)

    def _ping(self, timeout: float) -> tuple[dict | None, str]:
        try:
            return ping.delay().get(timeout=timeout), ""
        except CeleryTimeoutError:
            return None, (
                f"no worker answered within {timeout:g} s: is `celery -A xoweb worker` running "
                "and connected to the same REDIS_URL?"
            )

    def _print(self, listed: list[dict], orphans: list[dict], answer: dict | None) -> None:
        self.stdout.write(f"{len(listed)} worker(s) answered the broker's control channel")
        for worker in listed:
            processes = f", {worker['processes']} processes" if worker["processes"] else ""
            self.stdout.write(
                f"  {worker['name']}: main pid {worker['pid']}{processes}; queues "
                f"{', '.join(worker['queues']) or 'none'}"
            )
            for vm in worker["backing_up"]:
                self.stdout.write(
                    f"    backing up VM {vm['vm']} (run {vm['run']} of job {vm['job']}, try "
                    f"{vm['attempt']}) in pid {vm['pid']} for {vm['seconds']} s"
                )
            if not worker["backing_up"]:
                self.stdout.write("    backing up no VM")
        for vm in orphans:
            self.stdout.write(
                f"  VM {vm['vm']} (run {vm['run']}) is recorded as backed up by {vm['worker']}, "
                "which no live worker runs: it is handed to another worker once its heartbeat "
                "times out"
            )
        if answer:
            self.stdout.write(f"worker on {answer['hostname']} (pid {answer['pid']}) answered")
