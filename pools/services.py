"""Functions other apps (and the pools pages) call to read a pool's cache or act on a pool;
they never import XenAPI or pools.xapi themselves.

``client_for`` and ``cancel_xapi_task`` talk to XAPI, so they run in a Celery worker or the
watcher, never in a web request; ``disks_of`` only reads the cache.
"""

from __future__ import annotations

from django.conf import settings

from pools.liveness import current_watch
from pools.models import VBD, VDI, VM, Pool, XapiTask
from pools.xapi import XapiClient, XapiError


class PoolUnavailable(XapiError):
    """The pool is not live (:mod:`pools.liveness`), so nothing can be asked of it."""


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
    verdict = current_watch().pool(pool)
    if not verdict.live:
        raise PoolUnavailable(
            f"{verdict.reason}: task {xapi_task.name_label or xapi_task.ref} cannot be "
            "cancelled now"
        )
    with client_for(pool) as client:
        client.cancel_task(xapi_task.ref)


def disks_of(vms: list[VM]) -> dict[tuple[int, str], list[VDI]]:
    """The disks (VDIs behind Disk VBDs) of the given VMs, by ``(pool id, VM ref)``, in two
    queries whatever their number."""
    if not vms:
        return {}
    refs = {vm.ref for vm in vms}
    pool_ids = {vm.pool_id for vm in vms}
    vbds = list(
        VBD.objects.filter(pool_id__in=pool_ids, vm_ref__in=refs, type="Disk")
        .exclude(vdi_ref="")
        .order_by("userdevice")
        .values_list("pool_id", "vm_ref", "vdi_ref")
    )
    vdis = {
        (vdi.pool_id, vdi.ref): vdi
        for vdi in VDI.objects.filter(
            # Hidden base copies (managed=false) are never a VM's disk (docs/xapi.md §12).
            pool_id__in=pool_ids,
            ref__in={vdi_ref for _, _, vdi_ref in vbds},
            managed=True,
        ).only("pool_id", "ref", "name_label", "virtual_size", "stale_since")
    }
    disks: dict[tuple[int, str], list[VDI]] = {}
    for pool_id, vm_ref, vdi_ref in vbds:
        vdi = vdis.get((pool_id, vdi_ref))
        if vdi is not None:
            disks.setdefault((pool_id, vm_ref), []).append(vdi)
    return disks
