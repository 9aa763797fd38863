"""``manage.py run_show RUN [--json]``: one run, per VM what happened and per disk the mode,
the reason and the bytes (the report the run page and the mail give)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backups.commandline import dumps, find_run, run_json
from backups.services import reports


class Command(BaseCommand):
    help = "Show one backup run: its VMs, and per disk full or delta, why, size and speed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run", help="the run's id (see run_list)")
        parser.add_argument("--json", action="store_true", help="print JSON, for scripts")

    def handle(self, *args, **options) -> None:
        run = find_run(options["run"])
        if options["json"]:
            self.stdout.write(dumps(run_json(run)))
            return
        report = reports.build(run)
        schedule = f"schedule {report.schedule}" if report.schedule else "run now"
        self.stdout.write(
            f"run {run.pk} of job {report.job} ({schedule}, {report.trigger}): {report.status}"
        )
        if report.message:
            self.stdout.write(f"  {report.message}")
        when = report.started.strftime("%Y-%m-%d %H:%M:%S") if report.started else "not started"
        self.stdout.write(
            f"  started {when}, {report.duration_text or 'still running'}; "
            f"{report.bytes_text} written{' at ' + report.speed_text if report.speed_text else ''}"
        )
        for name, why in report.failed_remotes.items():
            self.stdout.write(f"  remote {name} left out: {why}")
        for vm in report.vms:
            self.stdout.write(f"  VM {vm.name} ({vm.uuid}): {vm.what_happened}")
            for earlier in vm.earlier_attempts:
                self.stdout.write(f"    try {earlier['attempt']}: {earlier['error']}")
            for disk in vm.disks:
                speed = f" at {disk.speed_text}" if disk.speed_text else ""
                self.stdout.write(
                    f"    {disk.name}: {disk.mode} ({disk.reason}); size {disk.size_text}, "
                    f"{disk.bytes_text} written in {disk.duration_text}{speed}"
                )
