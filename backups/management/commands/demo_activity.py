"""The demo's own activity (the ``demo`` process of the Procfile): create the demo backups once
the demo pool is live, then keep its VMs writing into their disks (backups/services/demo.py)."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.management.base import BaseCommand

from backups.services import demo
from pools.xapi import XapiError


class Command(BaseCommand):
    help = (
        "Create the demo's remote and backup job once (when the demo pool is live), then write "
        "into the demo VMs' disks every XOWEB_DEMO_WRITE_SECONDS, so that deltas carry data."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="One pass (create if due, write once), then exit."
        )

    def handle(self, *args, **options) -> None:
        if not settings.DEMO_BACKUPS:
            self.stdout.write("demo: XOWEB_DEMO_BACKUPS is off: the demo pool is not backed up")
            self.stdout.flush()
            # honcho stops every process when one ends: this one stays, idle.
            while not options["once"]:
                time.sleep(3600)
            return
        every = settings.DEMO_WRITE_SECONDS
        while True:
            self.step()
            if options["once"]:
                return
            time.sleep(every)

    def step(self) -> None:
        pool = demo.demo_pool()
        if pool is None:
            return
        created = demo.create_once(pool)
        if created is not None:
            self.stdout.write(
                f"demo: job '{created.job.name}' backs up {len(created.job.vm_uuids)} VMs of "
                f"pool {pool.name} to {created.remote.path}, deltas every 2 minutes and a full "
                "every 10 (change or delete it on the Backups page)",
                ending="\n",
            )
            self.stdout.flush()
        try:
            demo.write_into_disks(pool)
        except XapiError as error:  # the simulator is starting or stopping: next time
            self.stderr.write(f"demo: could not write into the demo disks: {error}")
