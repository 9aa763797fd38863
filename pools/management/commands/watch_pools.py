"""``manage.py watch_pools``: keep the object cache of every enabled pool current."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand

from pools.watcher import Supervisor


class Command(BaseCommand):
    help = (
        "Watch every enabled pool with event.from and keep the object cache current; "
        "notices pools added, changed, disabled or removed without a restart."
    )

    def handle(self, *args, **options) -> None:
        supervisor = Supervisor()

        def on_signal(signum, frame) -> None:
            supervisor.stop()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        supervisor.run()
