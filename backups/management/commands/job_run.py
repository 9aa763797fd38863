"""``manage.py job_run JOB [--schedule NAME] [--force-full] [--wait [--timeout S]] [--json]``.

Queues a run on the workers (this process never backs up anything). With ``--wait`` it prints
the run's result: per VM its status and error, per disk its mode, the reason, bytes and file;
it exits non-zero unless the run succeeded.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.choices import RunStatus, Trigger
from backups.commandline import dumps, find_job, run_json, wait_for
from backups.models import BackupRun
from backups.services import runs


class Command(BaseCommand):
    help = "Run a backup job now on the workers; --wait prints its result."

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", help="job name, uuid or id")
        parser.add_argument("--schedule", default="", help="run as this schedule (retention…)")
        parser.add_argument("--force-full", action="store_true", help="every disk a full")
        parser.add_argument("--wait", action="store_true", help="wait for the run to end")
        parser.add_argument("--timeout", type=float, default=0, help="seconds to wait, 0 = none")
        parser.add_argument("--json", action="store_true", help="print JSON, for scripts")

    def handle(self, *args, **options) -> None:
        job = find_job(options["job"])
        schedule = None
        if options["schedule"]:
            schedule = job.schedules.filter(name__iexact=options["schedule"]).first()
            if schedule is None:
                names = ", ".join(job.schedules.values_list("name", flat=True)) or "none"
                raise CommandError(
                    f"--schedule: job {job.name} has no schedule {options['schedule']!r} "
                    f"(it has: {names})"
                )
        run = runs.request_run(
            job,
            trigger=Trigger.COMMAND,
            schedule=schedule,
            force_full=options["force_full"],
            requested_by="manage.py job_run",
        )
        if not options["wait"]:
            if options["json"]:
                self.stdout.write(dumps({"run": run.pk, "status": run.status}))
            else:
                self.stdout.write(f"run {run.pk} of job {job.name} queued")
            return
        run = wait_for(
            lambda: BackupRun.objects.select_related("job", "schedule").get(pk=run.pk),
            lambda row: row.is_final,
            timeout=options["timeout"],
            what=f"run {run.pk}",
        )
        if options["json"]:
            self.stdout.write(dumps(run_json(run)))
        else:
            self._print(run)
        if run.status != RunStatus.SUCCESS:
            raise CommandError(f"run {run.pk} ended {run.status}: {run.message}")

    def _print(self, run: BackupRun) -> None:
        self.stdout.write(f"run {run.pk} of job {run.job.name}: {run.status} — {run.message}")
        for vm in run_json(run)["vms"]:
            self.stdout.write(f"  {vm['name'] or vm['uuid']}: {vm['status']} {vm['error']}")
            for disk in vm["disks"]:
                self.stdout.write(
                    f"    {disk['name'] or disk['vdi']}: {disk['mode']} ({disk['reason']}), "
                    f"{disk['bytes']} bytes → {disk['file']}"
                )
