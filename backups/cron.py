"""Cron expressions and time zones of schedules: validated, described for people, iterated.

Pure (no database). Three well-kept libraries share the work, each doing what it is made for:
croniter checks the expression and computes the next runs in the schedule's time zone,
cron-descriptor writes the sentence a person reads ("At 01:00 AM, Monday through Friday"), and
Celery's ``crontab`` must accept the same five fields, because beat fires the schedules with it.

When both a day of the month and a day of the week are given, Celery's crontab wants both to
match (``0 1 13 * 5``: Friday the 13th), where classic cron takes either: croniter is asked for
Celery's reading (``day_or=False``), so that the next runs shown are the ones beat fires.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from celery.schedules import crontab
from cron_descriptor import Options, get_description
from croniter import croniter

#: Names of the five fields, in order, as Celery's crontab calls them.
FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says what to fix."""


def normalise_cron(expression: str) -> str:
    """The expression with single spaces, or :class:`CronError` saying what is wrong.

    Five fields only (minute hour day-of-month month day-of-week), as Xen Orchestra and beat
    use; seconds or years are refused rather than silently ignored.
    """
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; a schedule needs 5: "
            "minute hour day-of-month month day-of-week (e.g. '0 1 * * *')"
        )
    text = " ".join(fields)
    if not croniter.is_valid(text):
        raise CronError(f"{text!r} is not a valid cron expression: {_why(text)}")
    try:
        crontab(**dict(zip(FIELDS, fields, strict=True)))
    except (ValueError, TypeError) as error:
        raise CronError(f"{text!r} cannot be fired by beat: {error}") from None
    return text


def _why(text: str) -> str:
    try:
        croniter(text)
    except Exception as error:  # croniter's own exceptions carry the reason
        return str(error) or type(error).__name__
    return "unknown reason"


def describe(expression: str) -> str:
    """A sentence for people, e.g. "At 01:00 AM, only on Sunday"."""
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return get_description(expression, options)
    except Exception:  # an expression saved before validation existed: say so, do not crash
        return f"(cannot describe {expression!r})"


def normalise_timezone(name: str) -> str:
    """An IANA time zone name (e.g. Europe/Paris), or :class:`CronError`."""
    name = name.strip()
    if not name:
        raise CronError("enter a time zone, e.g. UTC or Europe/Paris")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"{name!r} is not a known time zone (e.g. UTC, Europe/Paris)") from None
    if name not in available_timezones() and name != "UTC":
        raise CronError(f"{name!r} is not a known time zone (e.g. UTC, Europe/Paris)")
    return name


def next_runs(expression: str, timezone: str, after: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` moments the schedule fires after ``after`` (aware, in its zone)."""
    start = after.astimezone(ZoneInfo(timezone))
    iterator = croniter(expression, start, day_or=False)
    return [iterator.get_next(datetime) for _ in range(count)]


#: Beat fires a moment at or just after it; a firing this close before a moment stands for it.
TICK_SLACK = timedelta(seconds=1)


def tick_of(expression: str, timezone: str, fired_at: datetime) -> datetime:
    """The schedule's moment that a firing at ``fired_at`` stands for: the latest one at or
    before it (a catch-up firing after beat was down stands for the latest moment missed)."""
    start = (fired_at + TICK_SLACK).astimezone(ZoneInfo(timezone))
    return croniter(expression, start, day_or=False).get_prev(datetime)
