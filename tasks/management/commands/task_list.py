"""``manage.py task_list [--json] [--running]``: the tasks of xoweb and of the pools, for scripts."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from tasks import formatting
from tasks.listing import TaskFilters, task_page
from xoweb.params import BadParameter, parse_id

MAX_LIMIT = 10_000

FIELDS = [
    "id",
    "source",
    "name",
    "status",
    "progress",
    "elapsed_s",
    "remaining_s",
    "eta",
    "rate_bps",
]


class Command(BaseCommand):
    help = (
        "List tasks (xoweb's, with their sub-tasks, and the pools' XAPI tasks) with progress, "
        "elapsed and remaining seconds, estimated end and rate in bytes/s (null when unknown)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="one JSON list, for scripts")
        parser.add_argument("--running", action="store_true", help="only pending/running tasks")
        parser.add_argument("--pool", default="", help="only the tasks of this pool id")
        parser.add_argument("--limit", type=int, default=100, help="most root tasks (100)")

    def handle(self, *args, **options) -> None:
        try:
            pool = parse_id("--pool", options["pool"])
        except BadParameter as error:
            raise CommandError(str(error)) from None
        filters = TaskFilters(status="running" if options["running"] else "", pool=pool)
        if not 1 <= options["limit"] <= MAX_LIMIT:
            raise CommandError(f"--limit={options['limit']} must be from 1 to {MAX_LIMIT}")
        listing = task_page(filters, 1, per_page=options["limit"])
        views = [*listing.rows(), *listing.xapi_tasks]
        records = []
        for view in views:
            data = view.as_json(with_children=False)
            record = {key: data[key] for key in FIELDS}
            record["parent"] = view.ancestors[-1] if view.ancestors else None
            records.append(record)
        if options["json"]:
            self.stdout.write(json.dumps(records, indent=2))
            return
        if not records:
            self.stdout.write("no task")
            return
        self.stdout.write(
            f"{'ID':>6}  {'SOURCE':<12} {'STATUS':<11} {'PROGRESS':>8}  {'ELAPSED':>11}  "
            f"{'REMAINING':>11}  {'RATE':>12}  NAME"
        )
        for view, record in zip(views, records, strict=True):
            progress = "" if record["progress"] is None else f"{record['progress'] * 100:.1f} %"
            remaining = formatting.duration(record["remaining_s"])
            if view.estimate.stalled:
                remaining = "stalled"
            self.stdout.write(
                f"{record['id']:>6}  {record['source'][:12]:<12} {record['status']:<11} "
                f"{progress:>8}  {formatting.duration(record['elapsed_s']):>11}  {remaining:>11}  "
                f"{formatting.rate(view.estimate.rate, view.unit):>12}  "
                f"{'  ' * view.depth}{view.name}"
            )
