"""``manage.py remote_list [--check] [--json]``: remotes with their status and space."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from backups.commandline import dumps, remote_json
from backups.models import Remote
from backups.services import remotes as checks


class Command(BaseCommand):
    help = "List the remotes, their last check and their space (--check tests them now)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="write-test every remote now")
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args, **options) -> None:
        remotes = list(Remote.objects.order_by("name"))
        if options["check"]:
            for remote in remotes:
                checks.check(remote)
        rows = [remote_json(remote) for remote in remotes]
        if options["json"]:
            self.stdout.write(dumps(rows))
            return
        if not rows:
            self.stdout.write("no remotes")
            return
        self.stdout.write(f"{'NAME':20} {'STATUS':8} {'FREE':>14}  PATH")
        for row in rows:
            free = "-" if row["free"] is None else str(row["free"])
            self.stdout.write(f"{row['name']:20} {row['status']:8} {free:>14}  {row['path']}")
