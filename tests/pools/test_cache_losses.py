"""What the watcher does when it loses a pool, with an injected clock: grey, keep the first loss
time, purge exactly when the grace period ends, and tell other apps only afterwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pools import cache
from pools.choices import PoolStatus
from pools.models import VM, Pool
from pools.signals import pool_lost, pool_purged
from pools.watcher import report_loss

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
GRACE = 100


@pytest.fixture(autouse=True)
def grace(settings):
    settings.POOL_STALE_GRACE_SECONDS = GRACE


def connected_pool(name: str = "lab", vms: int = 3) -> Pool:
    pool = Pool.objects.create(
        name=name, master_url="https://10.0.0.1", status=PoolStatus.CONNECTED, connected_at=T0
    )
    VM.objects.bulk_create(VM(pool=pool, ref=f"OpaqueRef:{n}") for n in range(vms))
    return pool


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_lost_pool_is_greyed_from_its_first_loss_and_purged_when_the_grace_ends():
    pool = connected_pool()
    assert cache.mark_lost(pool, status=PoolStatus.STALE, reason="refused", now=at(0))
    assert not cache.mark_lost(pool, status=PoolStatus.STALE, reason="still refused", now=at(30))
    pool.refresh_from_db()
    assert (pool.status, pool.stale_since, pool.status_message) == (
        PoolStatus.STALE,
        at(0),
        "still refused",
    )
    assert set(VM.objects.values_list("stale_since", flat=True)) == {at(0)}

    for moment in (0.8 * GRACE, GRACE - 1):
        assert cache.purge_expired(now=at(moment)) == [], f"purged after {moment} s"
        assert VM.objects.count() == 3
    assert cache.purge_expired(now=at(GRACE)) == [pool]
    assert not VM.objects.exists()
    pool.refresh_from_db()
    assert (pool.status, pool.stale_since) == (PoolStatus.DISCONNECTED, None)


def test_after_the_purge_a_pool_still_unreachable_is_disconnected_never_stale_without_a_time():
    pool = connected_pool()
    cache.mark_lost(pool, status=PoolStatus.STALE, reason="refused", now=at(0))
    cache.purge_expired(now=at(GRACE))
    cache.mark_lost(pool, status=PoolStatus.STALE, reason="refused again", now=at(GRACE + 5))
    pool.refresh_from_db()
    assert (pool.status, pool.stale_since) == (PoolStatus.DISCONNECTED, None)


@pytest.mark.parametrize(
    ("asked", "shown"),
    [(PoolStatus.STALE, PoolStatus.CONNECTING), (PoolStatus.ERROR, PoolStatus.ERROR)],
)
def test_a_pool_that_never_connected_is_connecting_or_error_not_stale(asked, shown):
    pool = Pool.objects.create(name="new", master_url="https://10.0.0.9")
    assert not cache.mark_lost(pool, status=asked, reason="connection refused", now=at(0))
    pool.refresh_from_db()
    assert (pool.status, pool.stale_since) == (shown, None)


def test_a_resync_in_the_meantime_wins_over_the_purge():
    pool = connected_pool()
    cache.mark_lost(pool, status=PoolStatus.STALE, reason="refused", now=at(0))
    cache.full_sync(pool, {"VM": {}}, pool_fields={})
    assert cache.purge_expired(now=at(GRACE * 2)) == []
    pool.refresh_from_db()
    assert pool.status == PoolStatus.CONNECTED and pool.stale_since is None


@pytest.fixture
def heard():
    events = []

    def lost(sender, pool, reason, status, **kwargs):
        events.append(("lost", VM.objects.filter(pool=pool, stale_since__isnull=False).count()))

    def purged(sender, pool, **kwargs):
        events.append(("purged", VM.objects.filter(pool=pool).count()))

    pool_lost.connect(lost, weak=False)
    pool_purged.connect(purged, weak=False)
    yield events
    pool_lost.disconnect(lost)
    pool_purged.disconnect(purged)


def test_other_apps_hear_of_a_loss_after_the_objects_are_greyed(heard):
    report_loss(connected_pool(), status=PoolStatus.STALE, reason="refused")
    assert heard == [("lost", 3)]


def test_a_grace_of_zero_purges_at_once_then_tells_other_apps(heard, settings):
    settings.POOL_STALE_GRACE_SECONDS = 0
    report_loss(connected_pool(), status=PoolStatus.STALE, reason="refused")
    assert heard == [("lost", 3), ("purged", 0)]
