"""The storage outlook of remotes: their space history, growth per day and the date each will
be full (the rule is :mod:`backups.outlook`; this module feeds it rows and stores its answer).

Steps of a reading (:func:`record_reading`, called by every successful check of a remote, in
the worker or the web process): add a sample unless the last one is younger than
``OUTLOOK_SAMPLE_SECONDS``; recompute the forecast from the window of samples; store it on the
remote's row, where the dashboard reads it without recomputing anything on each refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from backups import outlook
from backups.models import Remote, RemoteSpaceSample
from backups.outlook_chart import chart_svg


def _forecast(remote: Remote, now: datetime) -> outlook.Forecast:
    return _fit(window(remote, now), now)


def _fit(samples: list[outlook.SpaceSample], now: datetime) -> outlook.Forecast:
    return outlook.forecast(
        samples,
        now=now,
        window_days=settings.OUTLOOK_WINDOW_DAYS,
        min_span=timedelta(seconds=settings.OUTLOOK_MIN_SPAN_SECONDS),
    )


def window(remote: Remote, now: datetime) -> list[outlook.SpaceSample]:
    """The readings the forecast uses, oldest first."""
    since = now - timedelta(days=settings.OUTLOOK_WINDOW_DAYS)
    rows = RemoteSpaceSample.objects.filter(remote=remote, taken_at__gte=since).order_by("taken_at")
    return [
        outlook.SpaceSample(at, used, free)
        for at, used, free in rows.values_list("taken_at", "used", "free")
    ]


def record_reading(remote: Remote, *, total: int, free: int, now: datetime | None = None) -> bool:
    """Keep a reading of ``remote``'s space and refresh its forecast; False when the last
    reading is too recent for another one (the forecast is left as it is).

    "Used" is ``total - free``: what stands between the remote and full, whoever wrote it
    (other files on a shared disk fill it as surely as backups)."""
    now = now or timezone.now()
    recent = now - timedelta(seconds=settings.OUTLOOK_SAMPLE_SECONDS)
    if RemoteSpaceSample.objects.filter(remote=remote, taken_at__gt=recent).exists():
        return False
    RemoteSpaceSample.objects.create(
        remote=remote, taken_at=now, total=total, used=total - free, free=free
    )
    refresh(remote, now)
    return True


def refresh(remote: Remote, now: datetime | None = None) -> outlook.Forecast:
    """Recompute ``remote``'s forecast and store it on its row."""
    now = now or timezone.now()
    answer = _forecast(remote, now)
    remote.growth_per_day, remote.full_at = answer.growth_per_day, answer.full_at
    remote.outlook_note = answer.reason[:200]
    Remote.objects.filter(pk=remote.pk).update(
        growth_per_day=remote.growth_per_day,
        full_at=remote.full_at,
        outlook_note=remote.outlook_note,
    )
    return answer


def prune(now: datetime | None = None) -> int:
    """Delete the readings older than ``OUTLOOK_HISTORY_DAYS``; returns how many went."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.OUTLOOK_HISTORY_DAYS)
    deleted, _ = RemoteSpaceSample.objects.filter(taken_at__lt=cutoff).delete()
    return deleted


@dataclass(frozen=True)
class Warning:
    remote: Remote
    days_left: float

    @property
    def seconds_left(self) -> float:
        return self.days_left * 86400


def filling_soon(now: datetime | None = None) -> list[Warning]:
    """Enabled remotes that will be full within ``XOWEB_OUTLOOK_WARN_DAYS`` at their growth
    rate, soonest first (one query: the forecast is on the rows)."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.OUTLOOK_WARN_DAYS)
    remotes = Remote.objects.filter(enabled=True, full_at__isnull=False).filter(
        Q(full_at__lte=horizon)
    )
    return [
        Warning(remote, max(0.0, (remote.full_at - now).total_seconds() / 86400))
        for remote in remotes.order_by("full_at")
    ]


@dataclass(frozen=True)
class Outlook:
    """What the remote's page shows."""

    forecast: outlook.Forecast
    chart: str
    days_left: float | None
    warn: bool

    @property
    def seconds_left(self) -> float | None:
        return None if self.days_left is None else self.days_left * 86400


def for_page(remote: Remote, now: datetime | None = None) -> Outlook:
    now = now or timezone.now()
    samples = window(remote, now)
    answer = _fit(samples, now)
    local = timezone.localtime
    chart = chart_svg(
        [outlook.SpaceSample(local(s.at), s.used, s.free) for s in samples],
        answer if answer.full_at is None else _localised(answer),
        now=local(now),
        title=f"Space used on {remote.name}",
    )
    days_left = answer.days_left(now)
    warn = days_left is not None and days_left <= settings.OUTLOOK_WARN_DAYS
    return Outlook(answer, chart, days_left, warn)


def _localised(answer: outlook.Forecast) -> outlook.Forecast:
    return outlook.Forecast(
        answer.growth_per_day,
        timezone.localtime(answer.full_at),
        answer.reason,
        answer.samples,
        answer.span,
    )
