"""Signals the watcher sends about a pool's connection (receivers in pools/receivers.py).

All are sent with ``sender=Pool`` and a ``pool`` keyword argument:

* ``pool_connected(pool)`` — a full resync just finished: the cache equals the pool's state;
* ``pool_lost(pool, reason, status)`` — the connection failed (``status`` is the PoolStatus to
  show: stale for a lost master, error for a refusal such as bad credentials); the receiver
  marks the pool's cached objects stale;
* ``pool_purged(pool)`` — the grace period passed without a reconnect and the pool's cached
  objects were deleted.
"""

from __future__ import annotations

from django.dispatch import Signal

pool_connected = Signal()
pool_lost = Signal()
pool_purged = Signal()
