"""``manage.py snapshot_janitor [--pool P] [--dry-run] [--json]``.

Our snapshots on the pools that no run will clean (docs/maintenance.md §5): those a run left
unexported (older than ``BACKUP_SNAPSHOT_JANITOR_AGE_SECONDS``), those beyond their schedule's
snapshot retention, a checkpoint's suspend VDI with it; the newest exported snapshot of each
disk (the next delta's base) stays, and only objects carrying our tags are ever looked at.
Beat runs it hourly. ``--json`` prints ``{"pool": [{"job_id", "vm_uuid", "what", "why",
"action"}]}`` (or the pool's error as a string).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from backups.commandline import dumps
from backups.services import snapshot_janitor
from pools.models import Pool


class Command(BaseCommand):
    help = "Remove our snapshots on the pools that no backup run will clean."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--pool", default="", help="only this pool (name)")
        parser.add_argument("--dry-run", action="store_true", help="report only")
        parser.add_argument("--json", action="store_true", help="one JSON object, for scripts")

    def handle(self, *args, **options) -> None:
        if options["pool"]:
            pool = Pool.objects.filter(name__iexact=options["pool"]).first()
            if pool is None:
                names = ", ".join(Pool.objects.values_list("name", flat=True)) or "none yet"
                raise CommandError(f"--pool: no pool {options['pool']!r} (pools: {names})")
            if not Pool.objects.live().filter(pk=pool.pk).exists():
                raise CommandError(f"--pool: pool {pool.name} is not connected now: try later")
            try:
                results = {pool.name: snapshot_janitor.sweep(pool, dry_run=options["dry_run"])}
            except Exception as error:
                raise CommandError(f"--pool: pool {pool.name}: {error}") from None
        else:
            results = snapshot_janitor.sweep_all(dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(
                dumps(
                    {
                        name: found if isinstance(found, str) else [a.as_dict() for a in found]
                        for name, found in results.items()
                    }
                )
            )
            return
        for name, found in results.items():
            if isinstance(found, str):
                self.stdout.write(f"{name}: not swept: {found}")
                continue
            for action in found:
                self.stdout.write(
                    f"{name}: {action.what} of VM {action.vm_uuid} ({action.why}): {action.action}"
                )
            self.stdout.write(f"{name}: {len(found)} snapshot group(s) handled")
