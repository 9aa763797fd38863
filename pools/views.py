"""Pages about pools and their VMs. They read the cache only: no view waits on XAPI, except
the pool form's connection test, which a person asks for (with a short timeout)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from pools.choices import PoolStatus, PowerState
from pools.forms import PoolForm
from pools.models import SR, VBD, VDI, VM, Host, Pool, WatcherHeartbeat, XapiTask
from pools.xapi import url_for_address

VMS_PER_PAGE = 50

#: Sort keys of the VM list: what the person asks for → ORDER BY.
VM_SORTS = {
    "name": ("name_label", "pk"),
    "-name": ("-name_label", "-pk"),
    "power": ("power_state", "name_label", "pk"),
    "-power": ("-power_state", "name_label", "pk"),
    "pool": ("pool__name", "name_label", "pk"),
    "-pool": ("-pool__name", "name_label", "pk"),
}

#: VM kinds the VM list can show.
VM_KINDS = {
    "guests": Q(is_a_snapshot=False, is_a_template=False, is_control_domain=False),
    "snapshots": Q(is_a_snapshot=True),
    "templates": Q(is_a_template=True, is_a_snapshot=False),
    "all": Q(),
}


def watcher_state() -> dict:
    """Whether a ``watch_pools`` process beat recently (pages show it; stale if not)."""
    heartbeat = WatcherHeartbeat.objects.order_by("-beat_at").first()
    return {
        "watcher": heartbeat,
        "watcher_alive": bool(heartbeat and heartbeat.is_alive(timezone.now())),
    }


def pool_list(request: HttpRequest) -> HttpResponse:
    return render(
        request, "pools/pool_list.html", {"pools": Pool.objects.with_counts(), **watcher_state()}
    )


def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(Pool.objects.with_counts(), pk=pk)
    state = watcher_state()
    live = pool.is_live and state["watcher_alive"]
    hosts = list(Host.objects.filter(pool=pool).order_by("name_label").defer("record"))
    for host in hosts:
        try:
            host.is_master = url_for_address(host.address, like=pool.connected_url) == (
                pool.connected_url
            )
        except ValueError:
            host.is_master = False
    return render(
        request,
        "pools/pool_detail.html",
        {
            "pool": pool,
            "live": live,
            "hosts": hosts,
            "srs": SR.objects.filter(pool=pool).order_by("name_label"),
            "tasks": XapiTask.objects.filter(pool=pool).order_by("-created")[:20],
            **state,
        },
    )


@sensitive_post_parameters("password")
@login_required
def pool_add(request: HttpRequest) -> HttpResponse:
    return _pool_form(request, Pool())


@sensitive_post_parameters("password")
@login_required
def pool_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _pool_form(request, get_object_or_404(Pool, pk=pk))


def _pool_form(request: HttpRequest, pool: Pool) -> HttpResponse:
    adding = pool.pk is None
    form = PoolForm(request.POST or None, instance=pool)
    if request.method == "POST" and form.is_valid():
        pool = form.save()
        if adding:
            messages.success(request, f"Pool {pool.name} added; the watcher connects to it now.")
        else:
            messages.success(request, f"Pool {pool.name} saved.")
        if form.trusted_fingerprint:
            messages.info(
                request,
                f"The master's certificate was trusted on first use and pinned: SHA-256 "
                f"{form.trusted_fingerprint}. Compare it with the one shown on the host.",
            )
        return redirect("pools:pool_detail", pk=pool.pk)
    return render(request, "pools/pool_form.html", {"form": form, "pool": pool, "adding": adding})


@login_required
@require_POST
def pool_delete(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(Pool, pk=pk)
    pool.delete()
    messages.success(request, f"Pool {pool.name} removed, with its cached objects.")
    return redirect("pools:pool_list")


def vm_list(request: HttpRequest) -> HttpResponse:
    """Searchable, sortable, paginated VMs of every pool; a constant number of queries."""
    query = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "name")
    if sort not in VM_SORTS:
        sort = "name"
    kind = request.GET.get("kind", "guests")
    if kind not in VM_KINDS:
        kind = "guests"
    pool_id = request.GET.get("pool", "")

    vms = VM.objects.filter(VM_KINDS[kind]).select_related("pool")
    if query:
        vms = vms.filter(Q(name_label__icontains=query) | Q(uuid__iexact=query))
    if pool_id.isdigit():
        vms = vms.filter(pool_id=int(pool_id))
    vms = vms.order_by(*VM_SORTS[sort]).defer("record", "pool__member_urls")
    page = Paginator(vms, VMS_PER_PAGE).get_page(request.GET.get("page"))

    state = watcher_state()
    rows = list(page.object_list)
    disks = _disks_of(rows)
    for vm in rows:
        vm.disks = disks.get((vm.pool_id, vm.ref), [])
        vm.shown_stale = (
            vm.is_stale or vm.pool.status != PoolStatus.CONNECTED or not state["watcher_alive"]
        )
    return render(
        request,
        "pools/vm_list.html",
        {
            "page": page,
            "vms": rows,
            "q": query,
            "sort": sort,
            "kind": kind,
            "kinds": list(VM_KINDS),
            "pool_id": pool_id,
            "pools": Pool.objects.order_by("name").only("pk", "name"),
            "power_states": PowerState,
            **state,
        },
    )


def _disks_of(vms: list[VM]) -> dict[tuple[int, str], list[VDI]]:
    """The disks (VDIs behind Disk VBDs) of the given VMs, in two queries whatever their number."""
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
            pool_id__in=pool_ids, ref__in={vdi_ref for _, _, vdi_ref in vbds}, managed=True
        ).only("pool_id", "ref", "name_label", "virtual_size", "stale_since")
    }
    disks: dict[tuple[int, str], list[VDI]] = {}
    for pool_id, vm_ref, vdi_ref in vbds:
        vdi = vdis.get((pool_id, vdi_ref))
        if vdi is not None:
            disks.setdefault((pool_id, vm_ref), []).append(vdi)
    return disks
