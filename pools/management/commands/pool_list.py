"""``manage.py pool_list [--json]``: the pools, their liveness and their object counts."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from pools.liveness import Verdict, current_watch
from pools.models import Pool


def _iso(moment) -> str | None:
    return moment.isoformat() if moment else None


def _row(pool: Pool, verdict: Verdict) -> dict:
    return {
        "name": pool.name,
        "url": pool.master_url,
        "connected_url": pool.connected_url,
        "enabled": pool.enabled,
        "liveness": verdict.liveness,
        "liveness_reason": verdict.reason,
        "status": pool.status,
        "status_message": pool.status_message,
        "stale_since": _iso(pool.stale_since),
        "purge_at": _iso(verdict.purge_at),
        "last_event_at": _iso(pool.last_event_at),
        "hosts": pool.host_count,
        "srs": pool.sr_count,
        "vms": pool.vm_count,
        "vdis": pool.vdi_count,
        "tasks": pool.task_count,
    }


class Command(BaseCommand):
    help = (
        "List the pools with their liveness (live, stale or unknown, and why), status, "
        "stale_since, purge_at, last_event_at and counts of hosts, srs, vms (neither "
        "snapshots, templates nor the control domain), vdis and tasks."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON array, for scripts")

    def handle(self, *args, **options) -> None:
        watch = current_watch()
        rows = [
            _row(pool, watch.pool(pool)) for pool in Pool.objects.with_counts().order_by("name")
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows:
            self.stdout.write("no pools")
            return
        header = (
            f"{'NAME':20} {'LIVENESS':9} {'STATUS':12} {'HOSTS':>5} {'SRS':>4} {'VMS':>6} "
            f"{'VDIS':>6} {'TASKS':>5}  URL"
        )
        self.stdout.write(header)
        for row in rows:
            self.stdout.write(
                f"{row['name']:20} {row['liveness']:9} {row['status']:12} {row['hosts']:>5} "
                f"{row['srs']:>4} {row['vms']:>6} {row['vdis']:>6} {row['tasks']:>5}  {row['url']}"
            )
