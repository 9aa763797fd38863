"""``manage.py job_cancel RUN [--vm UUID]``: cancel a run, or one VM of it.

What waits is cancelled at once; what runs stops within seconds (its worker closes the export's
connection, removes the partial files and the snapshot that was not exported). Nothing
committed is touched. Exits non-zero when there is nothing to cancel.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.commandline import find_run
from backups.services import cancel

BY = "manage.py job_cancel"


class Command(BaseCommand):
    help = "Cancel a backup run (or one VM of it, --vm): stops its transfers within seconds."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run", help="the run's id (see run_list)")
        parser.add_argument("--vm", default="", help="only this VM of the run (uuid or name)")

    def handle(self, *args, **options) -> None:
        run = find_run(options["run"])
        try:
            if options["vm"]:
                try:
                    vm_backup = cancel.find_vm(run, options["vm"])
                except cancel.CancelRefused as refused:
                    raise CommandError(f"--vm: {refused}") from None
                said = cancel.cancel_vm(vm_backup, by=BY)
            else:
                said = cancel.cancel_run(run, by=BY)
        except cancel.CancelRefused as refused:
            raise CommandError(str(refused)) from None
        self.stdout.write(said)
