"""``manage.py job_add NAME --mode delta|full --remote R [--remote R2] (--vm UUID… | --pool NAME
[--tag T]… [--power-state Running|Halted]) [--full-interval N] [--max-chain N] [--concurrency N]
[--vm-timeout S] [--report failure|always|never --report-to ADDRESS…] [--json]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.choices import VmSelection
from backups.commandline import dumps, find_remote, form_error, job_json
from backups.forms import BackupJobForm
from pools.models import Pool

OPTION_OF_FIELD = {
    "name": "NAME",
    "mode": "--mode",
    "vm_selection": "--vm/--pool",
    "vm_uuids": "--vm",
    "pool": "--pool",
    "vm_tags": "--tag",
    "vm_power_state": "--power-state",
    "remotes": "--remote",
    "full_interval": "--full-interval",
    "max_chain_length": "--max-chain",
    "concurrency": "--concurrency",
    "vm_timeout": "--vm-timeout",
    "report_when": "--report",
    "report_to": "--report-to",
}


class Command(BaseCommand):
    help = "Add a backup job: chosen VMs (--vm) or a rule (--pool, --tag, --power-state)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--mode", default="delta", help="delta (default) or full")
        parser.add_argument("--remote", action="append", default=[], help="remote name")
        parser.add_argument("--vm", action="append", default=[], help="VM uuid (repeatable)")
        parser.add_argument("--pool", default="", help="rule: back up this pool's VMs")
        parser.add_argument("--tag", action="append", default=[], help="rule: VMs with a tag")
        parser.add_argument("--power-state", default="", help="rule: Running or Halted")
        parser.add_argument("--full-interval", default="0", help="a full every N backups")
        parser.add_argument("--max-chain", default="0", help="maximum delta chain length")
        parser.add_argument("--concurrency", default="2", help="VMs at the same time")
        parser.add_argument("--vm-timeout", default="0", help="seconds per VM, 0 = none")
        parser.add_argument("--report", default="never", help="mail a report: failure|always|never")
        parser.add_argument(
            "--report-to", action="append", default=[], help="report recipient (repeatable)"
        )
        parser.add_argument("--json", action="store_true", help="print the job as JSON")

    def handle(self, *args, **options) -> None:
        if options["vm"] and options["pool"]:
            raise CommandError("job not added: --vm/--pool: give VMs or a pool, not both")
        if not options["vm"] and not options["pool"]:
            raise CommandError("job not added: --vm/--pool: give --vm UUID or --pool NAME")
        if not options["remote"]:
            raise CommandError("job not added: --remote: give at least one remote")
        remotes = [find_remote(name).pk for name in options["remote"]]
        pool_id = None
        if options["pool"]:
            pool = Pool.objects.filter(name__iexact=options["pool"]).first()
            if pool is None:
                raise CommandError(f"job not added: --pool: no pool {options['pool']!r}")
            pool_id = pool.pk
        form = BackupJobForm(
            data={
                "name": options["name"],
                "mode": options["mode"],
                "vm_selection": VmSelection.RULE if pool_id else VmSelection.EXPLICIT,
                "vm_uuids": options["vm"],
                "pool": pool_id,
                "vm_tags": ",".join(options["tag"]),
                "vm_power_state": options["power_state"],
                "remotes": remotes,
                "full_interval": options["full_interval"],
                "max_chain_length": options["max_chain"],
                "concurrency": options["concurrency"],
                "vm_timeout": options["vm_timeout"],
                "report_when": options["report"],
                "report_to": ",".join(options["report_to"]),
            }
        )
        if not form.is_valid():
            raise form_error("job not added", form, OPTION_OF_FIELD)
        job = form.save()
        if options["json"]:
            self.stdout.write(dumps(job_json(job)))
        else:
            self.stdout.write(f"job {job.name} added ({job.uuid}): {job.describe_selection()}")
