"""``manage.py backup_restore POINT --disk VDI_UUID (--sr SR_UUID | --to-file PATH
[--format raw|vhd])`` and ``backup_restore POINT --vm --sr SR_UUID [--new-macs]``.

The restore runs on the workers; this command waits for it (unless ``--no-wait``) and prints
the new VDI or VM uuid, or the file's path, size and SHA-256. POINT is an id of ``backup_list``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.choices import RestoreKind, RestoreStatus
from backups.commandline import dumps, wait_for
from backups.models import Restore, RestorePoint
from backups.services import restores

OPTION_OF_FIELD = {
    "point": "POINT",
    "disk": "--disk",
    "sr": "--sr",
    "to_file": "--to-file",
    "format": "--format",
    "new_macs": "--new-macs",
}


class Command(BaseCommand):
    help = "Restore a disk (to an SR or a file) or a whole VM from a restore point."

    def add_arguments(self, parser) -> None:
        parser.add_argument("point", help="restore point id (see backup_list)")
        parser.add_argument("--disk", default="", help="source VDI uuid of the disk")
        parser.add_argument("--vm", action="store_true", help="restore the whole VM")
        parser.add_argument("--sr", default="", help="SR uuid to restore onto")
        parser.add_argument("--to-file", default="", help="write the disk to this file")
        parser.add_argument("--format", default="raw", help="raw (default) or vhd")
        parser.add_argument(
            "--new-macs",
            action="store_true",
            help="with --vm: new MAC addresses instead of the backup's (for a copy that runs "
            "beside its original)",
        )
        parser.add_argument("--no-wait", action="store_true", help="queue and return")
        parser.add_argument("--timeout", type=float, default=0, help="seconds to wait, 0 = none")
        parser.add_argument("--json", action="store_true", help="print JSON, for scripts")

    def handle(self, *args, **options) -> None:
        point = self._point(options["point"])
        kind = self._kind(options)
        try:
            restore = restores.request(
                point,
                kind,
                vdi_uuid=options["disk"],
                sr_uuid=options["sr"],
                file_path=options["to_file"],
                file_format=options["format"],
                new_macs=options["new_macs"],
                requested_by="manage.py backup_restore",
            )
        except restores.RestoreRefused as refused:
            option = OPTION_OF_FIELD.get(refused.field, refused.field)
            raise CommandError(f"not restored: {option}: {refused}") from None
        if not options["no_wait"]:
            restore = wait_for(
                lambda: Restore.objects.get(pk=restore.pk),
                lambda row: row.is_final,
                timeout=options["timeout"],
                what=f"restore {restore.pk}",
            )
        data = {
            "restore": restore.pk,
            "status": restore.status,
            "error": restore.error,
            "result": restore.result,
        }
        if options["json"]:
            self.stdout.write(dumps(data))
        else:
            self.stdout.write(f"restore {restore.pk}: {restore.status} {restore.result or ''}")
        if restore.status == RestoreStatus.FAILED or restore.status == RestoreStatus.INTERRUPTED:
            raise CommandError(f"restore {restore.pk} failed: {restore.error}")

    @staticmethod
    def _point(text: str) -> RestorePoint:
        point = None
        if text.isdigit():
            point = RestorePoint.objects.select_related("remote").filter(pk=int(text)).first()
        if point is None:
            raise CommandError(f"POINT: no restore point {text!r} (see manage.py backup_list)")
        return point

    @staticmethod
    def _kind(options) -> str:
        if options["vm"]:
            if options["disk"] or options["to_file"]:
                raise CommandError("not restored: --vm: give --vm or --disk, not both")
            if not options["sr"]:
                raise CommandError("not restored: --sr: a whole VM is restored onto an SR")
            return RestoreKind.VM
        if not options["disk"]:
            raise CommandError("not restored: --disk: give the source VDI uuid (or --vm)")
        if bool(options["sr"]) == bool(options["to_file"]):
            raise CommandError("not restored: --sr/--to-file: give exactly one of them")
        return RestoreKind.DISK_TO_SR if options["sr"] else RestoreKind.DISK_TO_FILE
