"""``manage.py pool_remove NAME``: forget a pool and its cached objects."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from pools.models import Pool


class Command(BaseCommand):
    help = "Remove a pool from xoweb, with its cached objects (the watcher stops watching it)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="the pool's name in xoweb")

    def handle(self, *args, name: str, **options) -> None:
        pool = Pool.objects.filter(name=name).first()
        if pool is None:
            known = ", ".join(Pool.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"NAME: there is no pool named {name!r} (pools: {known})")
        pool.delete()
        self.stdout.write(f"pool {name} removed")
