"""``manage.py job_list [--json]``: jobs with their VMs, remotes and schedules."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backups.commandline import dumps, job_json, jobs_for_listing


class Command(BaseCommand):
    help = "List the backup jobs with their selection, remotes and schedules."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args, **options) -> None:
        jobs = list(jobs_for_listing().order_by("name"))
        if options["json"]:
            self.stdout.write(dumps([job_json(job) for job in jobs]))
            return
        if not jobs:
            self.stdout.write("no jobs")
            return
        for job in jobs:
            remotes = ", ".join(remote.name for remote in job.remotes.all())
            self.stdout.write(f"{job.name}  [{job.mode}]  {job.describe_selection()}  → {remotes}")
            for schedule in job.schedules.all():
                self.stdout.write(
                    f"    {schedule.name}: {schedule.cron} ({schedule.description})"
                    + (" force full" if schedule.force_full else "")
                    + ("" if schedule.enabled else " [disabled]")
                )
