"""Signals the watcher sends to tell other apps about a pool's connection.

The watcher has already done what the pools app itself needs (pools/watcher.py greys and purges
the cache); these are for the other apps, e.g. the backup engine failing a lost pool's VMs
cleanly. All are sent with ``sender=Pool`` and a ``pool`` keyword argument:

* ``pool_connected(pool)``: a full resync just finished, the cache equals the pool's state;
* ``pool_lost(pool, reason, status)``: the connection failed (``status`` is the PoolStatus asked
  for: stale for a lost master, error for a refusal such as bad credentials, disabled) and the
  pool's objects are greyed; sent once per outage;
* ``pool_purged(pool)``: the grace period passed without a reconnect and the pool's cached
  objects were deleted.
"""

from __future__ import annotations

from django.dispatch import Signal

pool_connected = Signal()
pool_lost = Signal()
pool_purged = Signal()
