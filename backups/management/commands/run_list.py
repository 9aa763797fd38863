"""``manage.py run_list [--job JOB] [--status STATUS] [--limit N] [--json]``: runs, newest first.

Per run: id, job, schedule, trigger, status, started, ended, and per VM its uuid, status, the
worker backing it up (``host:pid``) and its error.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.choices import RunStatus
from backups.commandline import dumps, find_job, run_json, runs_for_listing


class Command(BaseCommand):
    help = "List backup runs, newest first, with the status of each of their VMs."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--job", default="", help="only the runs of this job (name/uuid/id)")
        parser.add_argument(
            "--status", default="", help=f"only runs in this status ({', '.join(RunStatus.values)})"
        )
        parser.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args, **options) -> None:
        status = options["status"]
        if status and status not in RunStatus.values:
            raise CommandError(
                f"--status: {status!r} is not a run status (choose from "
                f"{', '.join(RunStatus.values)})"
            )
        if not 1 <= options["limit"] <= 10_000:
            raise CommandError(f"--limit: give 1 to 10000, not {options['limit']}")
        job = find_job(options["job"]) if options["job"] else None
        runs = list(runs_for_listing(job, status)[: options["limit"]])
        if options["json"]:
            self.stdout.write(dumps([run_json(run, disks=False) for run in runs]))
            return
        if not runs:
            self.stdout.write("no runs")
            return
        for run in runs:
            data = run_json(run, disks=False)
            started = run.started.strftime("%Y-%m-%d %H:%M:%S") if run.started else "not started"
            ended = run.ended.strftime("%H:%M:%S") if run.ended else "…"
            schedule = data["schedule"] or "run now"
            self.stdout.write(
                f"run {run.pk}  {run.job.name}  [{schedule}, {run.trigger}]  {run.status}  "
                f"{started} → {ended}  {run.message}"
            )
            for vm in data["vms"]:
                worker = f" on {vm['worker']}" if vm["worker"] else ""
                error = f": {vm['error']}" if vm["error"] else ""
                self.stdout.write(
                    f"    {vm['name'] or vm['uuid']} ({vm['uuid']}) {vm['status']}{worker}{error}"
                )
