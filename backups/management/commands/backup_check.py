"""``manage.py backup_check [--remote R] [--vm UUID] [--deep] [--json]``: verify backups.

Every metadata file parses, every VHD it names exists and passes its check with its chain; with
``--deep`` every file is read and its SHA-256 compared with the one its metadata recorded. The
check runs in this process, as a task with progress, under each VM folder's lock; its verdicts
are stored (the pages show them; a backup that failed is never a delta's base and is not
restored). Exits 1 when a backup failed or a remote could not be checked.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.choices import CheckStatus
from backups.commandline import dumps, find_remote, verification_json
from backups.engine.layout import is_uuid
from backups.models import Remote
from backups.services import restore_points, verification


class Command(BaseCommand):
    help = "Verify the backups on the remotes (--deep: also every file's SHA-256)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--remote", default="", help="only this remote (name)")
        parser.add_argument("--vm", default="", help="only this VM (uuid)")
        parser.add_argument(
            "--deep", action="store_true", help="read every file and compare its SHA-256"
        )
        parser.add_argument("--json", action="store_true", help="print JSON, for scripts")

    def handle(self, *args, **options) -> None:
        vm = options["vm"].strip().lower()
        if vm and not is_uuid(vm):
            raise CommandError(f"--vm: {options['vm']!r} is not a VM uuid")
        if options["remote"]:
            remotes = [find_remote(options["remote"])]
        else:
            remotes = list(Remote.objects.filter(enabled=True).order_by("name"))
            if not remotes:
                raise CommandError("--remote: no enabled remote to check (see remote_list)")
        results, failed, unchecked = [], 0, []
        for remote in remotes:
            row, report = verification.check_now(
                remote,
                deep=options["deep"],
                vm_uuids=[vm] if vm else (),
                requested_by="manage.py backup_check",
            )
            try:  # the index follows the remote, so that the pages show what was checked
                restore_points.rebuild(remote, vm_uuid=vm or None)
            except Exception as error:
                self.stderr.write(f"remote {remote.name}: restore points not re-read: {error}")
            results.append((row, report))
            failed += row.backups_failed
            if row.status == CheckStatus.ERROR:
                unchecked.append(f"{remote.name}: {row.message}")
        if options["json"]:
            data = [verification_json(row, report) for row, report in results]
            self.stdout.write(dumps({"ok": not failed and not unchecked, "remotes": data}))
        else:
            for row, report in results:
                self._print(row, report)
        if unchecked:
            raise CommandError("not checked: " + "; ".join(unchecked))
        if failed:
            raise CommandError(f"{failed} backup(s) failed verification")

    def _print(self, row, report) -> None:
        self.stdout.write(f"remote {row.remote.name}: {row.get_status_display()} — {row.message}")
        if report is None:
            return
        for vm_uuid, why in report.skipped.items():
            self.stdout.write(f"  VM {vm_uuid}: {why}")
        for backup in report.backups:
            problems = report.problems(backup)
            verdict = "ok    " if not problems else "FAILED"
            self.stdout.write(
                f"  {verdict} {backup.timestamp}  {backup.vm_name or backup.vm_uuid}  {backup.path}"
            )
            for problem in problems:
                self.stdout.write(f"         - {problem}")
