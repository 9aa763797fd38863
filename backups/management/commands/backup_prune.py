"""``manage.py backup_prune [--job J] [--remote R] [--vm UUID] [--dry-run] [--merges N]
[--json]``.

Each schedule's retention (docs/maintenance.md §2) applied now on the job's remotes (every job
when none is named), then the clean pass, which merges or deletes the files the dropped backups
no longer need. ``--dry-run`` lists what would go and why, reading the remotes and changing
nothing. Each line: ``drop|keep  REMOTE  VM  TIMESTAMP  why``. ``--json`` prints
``[{"remote", "vms": [{"vm", "retention": [{"path", "vm", "timestamp", "schedule", "keep",
"reason"}], "findings": […], "merges_done", "merges_left"}]}]``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.commandline import (
    add_clean_pass_options,
    clean_pass_lines,
    dumps,
    find_job,
    find_remote,
    parse_merges,
    parse_vm,
)
from backups.models import BackupJob
from backups.services import maintenance
from tasks.reporter import task


class Command(BaseCommand):
    help = "Apply the schedules' retention on the remotes now (or show what it would drop)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--job", default="", help="only this job (name, uuid or id)")
        parser.add_argument("--remote", default="", help="only this remote (name)")
        add_clean_pass_options(
            parser, vm_help="only this VM (uuid)", dry_run_help="list what would go, and why"
        )

    def handle(self, *args, **options) -> None:
        vm = parse_vm(options["vm"])
        merges = parse_merges(options["merges"])
        jobs = (
            [find_job(options["job"])]
            if options["job"]
            else list(BackupJob.objects.prefetch_related("schedules").order_by("name"))
        )
        remote = find_remote(options["remote"]) if options["remote"] else None
        results = []
        what = "Retention dry run" if options["dry_run"] else "Retention"
        for job in jobs:
            remotes = [remote] if remote else list(job.remotes.filter(enabled=True))
            if remote is not None and not job.remotes.filter(pk=remote.pk).exists():
                if options["job"]:
                    raise CommandError(f"--remote: job {job.name} does not write to {remote.name}")
                continue
            with task(f"{what} of job {job.name}", kind="clean", about=job) as progress:
                try:
                    found = maintenance.prune(
                        job,
                        remotes=remotes,
                        vm_uuids=[vm] if vm else None,
                        dry_run=options["dry_run"],
                        merges=merges,
                        trigger="manage.py backup_prune",
                        progress=progress,
                    )
                except Exception as error:
                    raise CommandError(f"job {job.name}: {error}") from None
            results.extend(found)
        if options["json"]:
            self.stdout.write(dumps([result.as_dict() for result in results]))
            return
        for result in results:
            for report in result.reports:
                for decision in report.pruned:
                    verb = (
                        "keep"
                        if decision.keep
                        else ("drop" if not options["dry_run"] else "would drop")
                    )
                    self.stdout.write(
                        f"{verb:10}  {result.remote.name}  {decision.vm_uuid}  "
                        f"{decision.timestamp}  {decision.reason}"
                    )
            for line in clean_pass_lines(result):
                self.stdout.write(line)
