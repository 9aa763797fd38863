"""Models of the pools app: the pools xoweb manages and the cache of their XAPI objects.

One idea per module:

- :mod:`pools.models.pool`: the pools and the watcher's heartbeat;
- :mod:`pools.models.cached_object`: what every cached XAPI object shares (key, columns, Meta,
  record parsing) and how the rows are filtered by liveness;
- :mod:`pools.models.objects`: hosts, SRs, VMs, VDIs and VBDs;
- :mod:`pools.models.xapi_task`: XAPI tasks.

Code imports from ``pools.models``, never from the modules, so that the cut can move without
touching callers; the migrations name ``pools.models.XapiJSONEncoder`` too.
"""

from __future__ import annotations

from pools.models.cached_object import (
    CachedObject,
    CachedObjectQuerySet,
    XapiJSONEncoder,
)
from pools.models.objects import SR, VBD, VDI, VM, Host, VMQuerySet
from pools.models.pool import Pool, PoolQuerySet, WatcherHeartbeat
from pools.models.xapi_task import XapiTask, XapiTaskQuerySet

#: Every cached model, in the order the watcher fetches them.
CACHED_MODELS: tuple[type[CachedObject], ...] = (Host, SR, VM, VDI, VBD, XapiTask)

__all__ = [
    "CACHED_MODELS",
    "SR",
    "VBD",
    "VDI",
    "VM",
    "CachedObject",
    "CachedObjectQuerySet",
    "Host",
    "Pool",
    "PoolQuerySet",
    "VMQuerySet",
    "WatcherHeartbeat",
    "XapiJSONEncoder",
    "XapiTask",
    "XapiTaskQuerySet",
]
