"""``manage.py schedule_add JOB --cron EXPR [--name NAME] [--timezone TZ] [--retention N]
[--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]
[--snapshot-retention N] [--force-full] [--verify check|deep] [--health-check-sr SR_UUID
[--health-check-timeout S]] [--disabled] [--json]``."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from backups.commandline import dumps, find_job, form_error, schedule_json
from backups.forms import ScheduleForm
from backups.models import Schedule

OPTION_OF_FIELD = {
    "name": "--name",
    "cron": "--cron",
    "timezone": "--timezone",
    "retention": "--retention",
    "retention_daily": "--keep-daily",
    "retention_weekly": "--keep-weekly",
    "retention_monthly": "--keep-monthly",
    "retention_yearly": "--keep-yearly",
    "snapshot_retention": "--snapshot-retention",
    "force_full": "--force-full",
    "enabled": "--disabled",
    "verify": "--verify",
    "health_check_sr": "--health-check-sr",
    "health_check_timeout": "--health-check-timeout",
}


class Command(BaseCommand):
    help = "Add a schedule to a job (cron with time zone; --force-full makes its runs fulls)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("job", help="job name, uuid or id")
        parser.add_argument("--cron", required=True, help="e.g. '0 1 * * *'")
        parser.add_argument("--name", default="", help="default: the cron expression")
        parser.add_argument("--timezone", default=settings.TIME_ZONE, help="e.g. Europe/Paris")
        parser.add_argument("--retention", default="7", help="newest backups kept per remote")
        for option, period in (("daily", "day"), ("weekly", "week"), ("monthly", "month"),
                               ("yearly", "year")):  # fmt: skip
            parser.add_argument(
                f"--keep-{option}",
                default="0",
                help=f"also keep the newest backup of each of this many more {period}s",
            )
        parser.add_argument("--snapshot-retention", default="0", help="snapshots kept on pool")
        parser.add_argument("--force-full", action="store_true", help="every run is a full")
        parser.add_argument(
            "--verify", default="", help="after each run: check, or deep (every file's SHA-256)"
        )
        parser.add_argument(
            "--health-check-sr", default="", help="after each run, restore test on this SR (uuid)"
        )
        parser.add_argument(
            "--health-check-timeout", default="600", help="seconds the restored VM has to run"
        )
        parser.add_argument("--disabled", action="store_true", help="add it disabled")
        parser.add_argument("--json", action="store_true", help="print the schedule as JSON")

    def handle(self, *args, **options) -> None:
        job = find_job(options["job"])
        form = ScheduleForm(
            data={
                "name": options["name"] or options["cron"],
                "cron": options["cron"],
                "timezone": options["timezone"],
                "enabled": not options["disabled"],
                "retention": options["retention"],
                "retention_daily": options["keep_daily"],
                "retention_weekly": options["keep_weekly"],
                "retention_monthly": options["keep_monthly"],
                "retention_yearly": options["keep_yearly"],
                "snapshot_retention": options["snapshot_retention"],
                "force_full": options["force_full"],
                "verify": options["verify"],
                "health_check": bool(options["health_check_sr"]),
                "health_check_sr": options["health_check_sr"],
                "health_check_timeout": options["health_check_timeout"],
            },
            instance=Schedule(job=job),
        )
        if not form.is_valid():
            raise form_error("schedule not added", form, OPTION_OF_FIELD)
        schedule = form.save()
        if options["json"]:
            self.stdout.write(dumps(schedule_json(schedule)))
        else:
            self.stdout.write(
                f"schedule {schedule.name} added to job {job.name}: {schedule.description}"
                + (" (force full)" if schedule.force_full else "")
            )
