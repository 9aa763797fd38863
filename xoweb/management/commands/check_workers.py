"""Ask the Celery workers to answer, and say which did."""

from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.core.management.base import BaseCommand, CommandError

from xoweb.diagnostics import ping

MAX_TIMEOUT = 3600


class Command(BaseCommand):
    help = "Send a ping task through the broker and print which worker answered."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait")

    def handle(self, *args, timeout: float, **options) -> None:
        if not 0.1 <= timeout <= MAX_TIMEOUT:  # also refuses nan
            raise CommandError(f"--timeout: give seconds from 0.1 to {MAX_TIMEOUT}, not {timeout}")
        result = ping.delay()
        try:
            answer = result.get(timeout=timeout)
        except CeleryTimeoutError:
            raise CommandError(
                f"no worker answered within {timeout:g} s: is `celery -A xoweb worker` running "
                "and connected to the same REDIS_URL?"
            ) from None
        self.stdout.write(f"worker on {answer['hostname']} (pid {answer['pid']}) answered")
