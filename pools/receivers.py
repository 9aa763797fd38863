"""Receivers of the pool signals: grey a lost pool's objects, purge them after the grace."""

from __future__ import annotations

import logging

from django.conf import settings
from django.dispatch import receiver

from pools import cache
from pools.choices import PoolStatus
from pools.models import Pool
from pools.signals import pool_connected, pool_lost

logger = logging.getLogger(__name__)


@receiver(pool_lost, sender=Pool, dispatch_uid="pools.mark_stale_on_loss")
def mark_stale_on_loss(sender, pool: Pool, reason: str, status: str = PoolStatus.STALE, **kwargs):
    """Grey the pool's objects; with a grace of 0 purge them at once (like XO 5.56)."""
    cache.mark_stale(pool, status=status, reason=reason)
    logger.warning("pool %s lost: %s", pool.name, reason)
    if settings.POOL_STALE_GRACE_SECONDS == 0:
        cache.purge(pool)


@receiver(pool_connected, sender=Pool, dispatch_uid="pools.log_connected")
def log_connected(sender, pool: Pool, **kwargs):
    logger.info("pool %s connected and in sync", pool.name)
