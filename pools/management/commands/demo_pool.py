"""Register the embedded simulator as the pool ``demo``, once (``make run`` calls this)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pools.forms import PoolForm
from pools.models import Pool

DEMO_NAME = "demo"


class Command(BaseCommand):
    help = (
        "Add the simulator that `make run` starts (python -m xapisim) as the pool 'demo', "
        "unless a pool of that name exists."
    )

    def handle(self, *args, **options) -> None:
        if Pool.objects.filter(name=DEMO_NAME).exists():
            self.stdout.write(f"The demo pool is registered as '{DEMO_NAME}'.")
            return
        url = f"http://127.0.0.1:{settings.DEMO_POOL_PORT}/"
        form = PoolForm(
            data={
                "name": DEMO_NAME,
                "master_url": url,
                "username": "root",
                "password": settings.DEMO_POOL_PASSWORD,
                "tls_mode": "pin",
                "enabled": True,
                # The simulator starts beside the watcher, which reconnects until it answers.
                "test_connection": False,
            }
        )
        if not form.is_valid():
            raise CommandError(f"demo pool not added: {form.errors.as_text()}")
        form.save()
        self.stdout.write(f"Added the simulated pool '{DEMO_NAME}' at {url} (user root).")
