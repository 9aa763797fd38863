"""Liveness: may a pool's cached objects be shown, and used, as the pool's state now?

The one home of the rule "objects of a disconnected pool are never shown as live"
(docs/architecture.md §Rules, rule 6). Pages, presenters, JSON endpoints, commands and the
backup engine's VM selection ask here; none decides by itself (``tests/pools/test_liveness.py``
fails when a template or a view compares a pool's status or reads a heartbeat on its own).

A pool, and each of its cached objects, is in one of three states:

* **live**: the pool is connected and a watcher (``manage.py watch_pools``) beats, so the cache
  is the pool's state now and work may be asked of the pool (a backup, a cancel);
* **stale**: the pool's connection was lost at ``stale_since``: its objects are the last known
  state, shown greyed with that time and purged when the grace period ends
  (``POOL_STALE_GRACE_SECONDS``) unless the pool comes back first;
* **unknown**: nobody keeps the cache current (no watcher heartbeat within
  ``POOL_WATCHER_HEARTBEAT_TIMEOUT``), or the pool has no current picture: it is connecting,
  never connected (error), was purged (disconnected) or is disabled.

The rule, :func:`liveness`:

1. a loss time (``stale_since``) is set → stale, even with the watcher down: the loss is known;
2. otherwise, connected and a watcher beats → live;
3. otherwise → unknown.

In Python, :func:`current_watch` reads the heartbeat once (one query) and its
:meth:`Watch.pool` / :meth:`Watch.object` give a :class:`Verdict` per row; in SQL, the cached
models' ``.live()`` / ``.stale()`` / ``.not_live()`` and ``Pool.objects.live()`` filter by the
same rule (:func:`live_objects_filter`, :func:`live_pools_filter`)::

    VM.objects.guests().live()                      # the VMs a backup may select
    watch = current_watch()
    watch.pool(pool).live                           # may work be asked of this pool?
    watch.pool(pool).reason                         # why not, in a sentence
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db.models import Exists, Q
from django.utils import timezone

from pools.choices import PoolStatus


class Liveness:
    """The three answers of the rule (plain strings, so templates and JSON can use them)."""

    LIVE = "live"
    STALE = "stale"
    UNKNOWN = "unknown"


# --- the rule -------------------------------------------------------------------------------------


def heartbeat_cutoff(now: datetime) -> datetime:
    """A heartbeat older than this (at ``now``) belongs to a watcher that stopped or died."""
    return now - timedelta(seconds=settings.POOL_WATCHER_HEARTBEAT_TIMEOUT)


def heartbeat_is_fresh(beat_at: datetime | None, now: datetime) -> bool:
    return beat_at is not None and beat_at >= heartbeat_cutoff(now)


def liveness(*, status: str, stale_since: datetime | None, watcher_alive: bool) -> str:
    """The rule (module docstring): ``live``, ``stale`` or ``unknown``."""
    if stale_since is not None:
        return Liveness.STALE
    if status == PoolStatus.CONNECTED and watcher_alive:
        return Liveness.LIVE
    return Liveness.UNKNOWN


def grace_ends(stale_since: datetime) -> datetime:
    """When a pool lost at ``stale_since`` has its objects purged, unless it reconnects first."""
    return stale_since + timedelta(seconds=settings.POOL_STALE_GRACE_SECONDS)


def grace_cutoff(now: datetime) -> datetime:
    """Pools lost at or before this moment have outlived the grace period at ``now``."""
    return now - timedelta(seconds=settings.POOL_STALE_GRACE_SECONDS)


# --- the rule in SQL ------------------------------------------------------------------------------


def _beating(now: datetime) -> Exists:
    heartbeats = apps.get_model("pools", "WatcherHeartbeat").objects
    return Exists(heartbeats.filter(beat_at__gte=heartbeat_cutoff(now)))


def live_pools_filter(now: datetime) -> Q:
    """``liveness(...) == live`` for ``Pool`` rows, as one filter (the heartbeat a subquery)."""
    return Q(_beating(now), stale_since__isnull=True, status=PoolStatus.CONNECTED)


def live_objects_filter(now: datetime) -> Q:
    """The same for cached objects: their own loss mark unset, and their pool live."""
    return Q(
        _beating(now),
        stale_since__isnull=True,
        pool__stale_since__isnull=True,
        pool__status=PoolStatus.CONNECTED,
    )


# --- the rule for pages, presenters and commands ------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The liveness of one pool or cached object, with what a page shows about it.

    ``label`` is the badge's word (``connected``, ``stale``, ``error``, ``connecting``,
    ``watcher down``…), ``since`` the loss time of a stale one (always set when stale),
    ``purge_at`` the end of its grace period, ``reason`` a sentence saying why it is not live.
    """

    liveness: str
    label: str
    reason: str
    since: datetime | None = None
    purge_at: datetime | None = None
    tone: str = ""  # the badge's colour: ok, warn, bad or "" (neutral)

    @property
    def live(self) -> bool:
        return self.liveness == Liveness.LIVE

    @property
    def stale(self) -> bool:
        return self.liveness == Liveness.STALE

    def as_json(self) -> dict[str, Any]:
        return {
            "liveness": self.liveness,
            "label": self.label,
            "reason": self.reason,
            "since": self.since.isoformat() if self.since else None,
            "purge_at": self.purge_at.isoformat() if self.purge_at else None,
        }


#: The badge of a pool that is not live, by its status (stale ones add their loss time).
_TONE = {
    PoolStatus.CONNECTING: "warn",
    PoolStatus.STALE: "warn",
    PoolStatus.ERROR: "bad",
}
_STATE_WORDS = {
    PoolStatus.CONNECTING: "is connecting",
    PoolStatus.CONNECTED: "is connected",
    PoolStatus.STALE: "is stale",
    PoolStatus.DISCONNECTED: "is disconnected",
    PoolStatus.ERROR: "is in error",
    PoolStatus.DISABLED: "is disabled",
}


def _clock(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


@dataclass(frozen=True)
class Watch:
    """The watcher's heartbeat as read at ``now``: the input every liveness verdict needs.

    ``heartbeat`` is the latest ``WatcherHeartbeat`` row (None: no watcher ever ran, or the last
    one stopped cleanly).
    """

    heartbeat: Any
    now: datetime

    @property
    def watcher_alive(self) -> bool:
        return self.heartbeat is not None and heartbeat_is_fresh(self.heartbeat.beat_at, self.now)

    def pool(self, pool: Any) -> Verdict:
        """The verdict on ``pool`` (a ``Pool`` row)."""
        answer = liveness(
            status=pool.status, stale_since=pool.stale_since, watcher_alive=self.watcher_alive
        )
        return self._verdict(pool, answer, pool.stale_since)

    def object(self, cached: Any, pool: Any = None) -> Verdict:
        """The verdict on a cached object (its pool loaded, or given): its own loss mark wins."""
        pool = pool if pool is not None else cached.pool
        if cached.stale_since is None:
            return self.pool(pool)
        return self._verdict(pool, Liveness.STALE, cached.stale_since)

    def _verdict(self, pool: Any, answer: str, since: datetime | None) -> Verdict:
        message = f": {pool.status_message}" if pool.status_message else ""
        if answer == Liveness.LIVE:
            return Verdict(answer, "connected", f"pool {pool.name} is connected", tone="ok")
        if answer == Liveness.STALE:
            word = pool.status if pool.status != PoolStatus.CONNECTED else PoolStatus.STALE
            reason = f"pool {pool.name} is {word} since {_clock(since)}{message}"
            if not self.watcher_alive:
                reason += " (and no pool watcher is running to purge or reconnect it)"
            return Verdict(answer, word, reason, since, grace_ends(since), _TONE.get(word, "warn"))
        if not self.watcher_alive:
            return Verdict(
                answer,
                "watcher down",
                f"no pool watcher is running: last known state of pool {pool.name}",
                tone="bad",
            )
        words = _STATE_WORDS.get(pool.status, f"is {pool.status}")
        return Verdict(
            answer,
            pool.status,
            f"pool {pool.name} {words}{message}",
            tone=_TONE.get(pool.status, ""),
        )


def current_watch(now: datetime | None = None) -> Watch:
    """The watcher's latest heartbeat, read now (one query), for the verdicts of one request."""
    heartbeats = apps.get_model("pools", "WatcherHeartbeat").objects
    return Watch(heartbeats.order_by("-beat_at").first(), now or timezone.now())
