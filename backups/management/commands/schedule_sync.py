"""``manage.py schedule_sync [--check] [--json]``: every schedule has its beat entry.

Without ``--check`` it repairs what differs (missing entries, entries changed by hand, entries
of schedules that no longer exist) and says what it repaired; with ``--check`` it changes
nothing and exits non-zero when something differs (for monitoring).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups import scheduling
from backups.commandline import dumps


class Command(BaseCommand):
    help = "Make beat's periodic tasks match the backup schedules (--check: only report)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="report drift, change nothing")
        parser.add_argument("--json", action="store_true", help="print JSON, for scripts")

    def handle(self, *args, **options) -> None:
        found = scheduling.drift() if options["check"] else scheduling.sync_all()
        if options["json"]:
            self.stdout.write(
                dumps(
                    {
                        "in_step": not found,
                        "repaired": bool(found) and not options["check"],
                        "missing": found.missing,
                        "different": found.different,
                        "orphans": found.orphans,
                    }
                )
            )
        elif not found:
            self.stdout.write("every schedule has its periodic task: nothing to do")
        else:
            verb = "found" if options["check"] else "repaired"
            for line in found.lines():
                self.stdout.write(f"{verb}: {line}")
        if found and options["check"]:
            raise CommandError(
                f"{len(found.lines())} difference(s) between the schedules and beat's periodic "
                "tasks: run manage.py schedule_sync to repair them"
            )
