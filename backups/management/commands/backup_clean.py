"""``manage.py backup_clean [--remote R] [--vm UUID] [--dry-run] [--merges N] [--json]``.

The clean pass (docs/maintenance.md §3) over the VM folders of one remote, or of every enabled
remote: Xen Orchestra's cleanVm table, each finding printed with what was done (or, with
``--dry-run``, what would be done: nothing changes). Each VM folder is cleaned under its lock;
a folder another process holds is reported as skipped. It runs in this process, as a task
with progress on the task pages. ``--json`` prints ``[{"remote", "vms": [{"vm", "dry_run",
"skipped", "findings": [{"kind", "path", "message", "action", "severity", "done"}],
"merges_done", "merges_left"}]}]``.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.commandline import (
    add_clean_pass_options,
    clean_pass_lines,
    dumps,
    find_remote,
    parse_merges,
    parse_vm,
)
from backups.models import Remote
from backups.services import maintenance
from tasks.reporter import task


class Command(BaseCommand):
    help = "Find and repair what crashes and interrupted runs left on the remotes."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--remote", default="", help="only this remote (name)")
        add_clean_pass_options(
            parser,
            vm_help="only this VM's folder (uuid)",
            dry_run_help="report only, change nothing",
        )

    def handle(self, *args, **options) -> None:
        vm = parse_vm(options["vm"])
        merges = parse_merges(options["merges"])
        remotes = (
            [find_remote(options["remote"])]
            if options["remote"]
            else list(Remote.objects.filter(enabled=True).order_by("name"))
        )
        if not remotes:
            raise CommandError("--remote: no enabled remote to clean (see manage.py remote_list)")
        results = []
        what = "Dry run of the clean pass" if options["dry_run"] else "Clean pass"
        for remote in remotes:
            with task(f"{what} on remote {remote.name}", kind="clean", about=remote) as progress:
                try:
                    result = maintenance.clean(
                        remote,
                        vm_uuids=[vm] if vm else None,
                        dry_run=options["dry_run"],
                        merges=merges,
                        trigger="manage.py backup_clean",
                        progress=progress,
                    )
                except Exception as error:
                    raise CommandError(f"--remote: remote {remote.name}: {error}") from None
                progress.info(maintenance.summarize(result))
            results.append(result)
        if options["json"]:
            self.stdout.write(dumps([result.as_dict() for result in results]))
            return
        for result in results:
            for line in clean_pass_lines(result):
                self.stdout.write(line)
