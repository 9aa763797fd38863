"""``manage.py backup_list [--vm UUID] [--remote R] [--cached] [--json]``: restore points,
oldest first. The index is first rebuilt from the remotes (they are the truth) unless
``--cached``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.commandline import dumps, find_remote, point_json, points_for_listing
from backups.models import Remote
from backups.services import restore_points


class Command(BaseCommand):
    help = "List the restore points (backups) on the remotes, oldest first."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--vm", default="", help="only this VM (uuid)")
        parser.add_argument("--remote", default="", help="only this remote (name)")
        parser.add_argument("--cached", action="store_true", help="do not re-read the remotes")
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args, **options) -> None:
        remote = find_remote(options["remote"]) if options["remote"] else None
        if not options["cached"]:
            remotes = [remote] if remote else list(Remote.objects.filter(enabled=True))
            for target in remotes:
                try:
                    restore_points.rebuild(target, vm_uuid=options["vm"] or None)
                except Exception as error:
                    raise CommandError(
                        f"--remote: remote {target.name} could not be read: {error}"
                    ) from None
        points = list(points_for_listing(options["vm"], remote))
        if options["json"]:
            self.stdout.write(dumps([point_json(point) for point in points]))
            return
        if not points:
            self.stdout.write("no backups")
            return
        for point in points:
            self.stdout.write(
                f"{point.pk:>6}  {point.timestamp}  {point.mode:5}  {point.remote.name:12} "
                f"{point.vm_name or point.vm_uuid}  ({len(point.disks)} disk(s))"
            )
