"""Functions other apps call to act on a pool (they never import XenAPI or pools.xapi).

They talk to XAPI, so they must run in a Celery worker or the watcher, never in a web request.
"""

from __future__ import annotations

from django.conf import settings

from pools.models import Pool, XapiTask
from pools.xapi import XapiClient, XapiError


class PoolUnavailable(XapiError):
    """The pool is not connected, so nothing can be asked of it."""


def client_for(pool: Pool, *, url: str = "", timeout: float | None = None) -> XapiClient:
    """A client (not yet logged in) for ``pool``: its current master, its TLS pins, its password.

    A fingerprint seen for the first time is stored on the pool (trust on first use): on the
    configured master address as the pool's pin, on another host (after a failover) among the
    member pins, so that a later connection to that host is checked against it.
    """
    fingerprints = dict(pool.member_fingerprints)
    if pool.tls_fingerprint:
        fingerprints[pool.master_url] = pool.tls_fingerprint

    def remember(address: str, fingerprint: str) -> None:
        if address == pool.master_url:
            if not pool.tls_fingerprint:
                pool.tls_fingerprint = fingerprint
                Pool.objects.filter(pk=pool.pk, tls_fingerprint="").update(
                    tls_fingerprint=fingerprint
                )
        elif address not in pool.member_fingerprints:
            pool.member_fingerprints = {**pool.member_fingerprints, address: fingerprint}
            Pool.objects.filter(pk=pool.pk).update(member_fingerprints=pool.member_fingerprints)

    return XapiClient(
        url or pool.connected_url or pool.master_url,
        pool.username,
        pool.get_password(),
        timeout=timeout or settings.POOL_XAPI_TIMEOUT,
        tls_mode=pool.tls_mode,
        fingerprints=fingerprints,
        on_new_fingerprint=remember,
    )


def cancel_xapi_task(xapi_task: XapiTask) -> None:
    """Ask the pool to cancel a running XAPI task (``task.cancel``; the task decides when).

    Raises :class:`PoolUnavailable` when the pool is not connected, and the XAPI error (e.g.
    ``OPERATION_NOT_ALLOWED`` for a task that cannot be cancelled) otherwise.
    """
    pool = Pool.objects.get(pk=xapi_task.pool_id)
    if not pool.is_live:
        raise PoolUnavailable(
            f"pool {pool.name} is {pool.get_status_display().lower()}: "
            f"task {xapi_task.name_label or xapi_task.ref} cannot be cancelled now"
        )
    with client_for(pool) as client:
        client.cancel_task(xapi_task.ref)
