"""Pages about pools and their VMs. They read the cache only: no view waits on XAPI, except
the pool form's connection test, which a person asks for (with a short timeout). Whether a row
is shown live, stale or unknown is :mod:`pools.liveness`'s verdict (the ``verdict`` filter of
``{% load liveness %}``), never decided here."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.debug import sensitive_post_parameters

from accounts.access import requires
from pools.addresses import url_for_address
from pools.choices import PowerState
from pools.forms import PoolForm
from pools.liveness import current_watch
from pools.models import VM, Host, Pool
from pools.services import disks_of
from xoweb.errors import bad_request_response
from xoweb.params import BadParameter, parse_choice, parse_id, parse_page, parse_search

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


@requires("pools.view_pool")
def pool_list(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "pools/pool_list.html",
        {"pools": Pool.objects.with_counts(), "watch": current_watch()},
    )


@requires("pools.view_pool")
def pool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(Pool.objects.with_counts(), pk=pk)
    # Through the pool's related managers, so that each row knows its pool without a query.
    hosts = list(
        pool.host_set.order_by("name_label").defer("record").annotate(vm_count=_resident_guests())
    )
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
            "hosts": hosts,
            "srs": pool.sr_set.order_by("name_label"),
            "tasks": pool.xapitask_set.order_by("-created")[:20],
            "watch": current_watch(),
        },
    )


def _resident_guests() -> Coalesce:
    """The number of guest VMs resident on each host, in the hosts' query."""
    guests = (
        VM.objects.guests()
        .filter(pool=OuterRef("pool"), resident_on_ref=OuterRef("ref"))
        .order_by()
        .values("pool")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(guests), 0)


@sensitive_post_parameters("password")
@requires("pools.add_pool", methods=["GET", "POST"])
def pool_add(request: HttpRequest) -> HttpResponse:
    return _pool_form(request, Pool())


@sensitive_post_parameters("password")
@requires("pools.change_pool", methods=["GET", "POST"])
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


@requires("pools.delete_pool", methods=["POST"])
def pool_delete(request: HttpRequest, pk: int) -> HttpResponse:
    pool = get_object_or_404(Pool, pk=pk)
    pool.delete()
    messages.success(request, f"Pool {pool.name} removed, with its cached objects.")
    return redirect("pools:pool_list")


@requires("pools.view_vm")
def vm_list(request: HttpRequest) -> HttpResponse:
    """Searchable, sortable, paginated VMs of every pool; a constant number of queries."""
    try:
        query = parse_search("q", request.GET.get("q"))
        sort = parse_choice("sort", request.GET.get("sort"), VM_SORTS, "name")
        kind = parse_choice("kind", request.GET.get("kind"), VM_KINDS, "guests")
        pool = parse_id("pool", request.GET.get("pool"))
        host_pk = parse_id("host", request.GET.get("host"))
        page_number = parse_page(request.GET.get("page"))
    except BadParameter as error:
        return bad_request_response(request, str(error))
    pool_id = "" if pool is None else str(pool)

    vms = VM.objects.filter(VM_KINDS[kind]).select_related("pool")
    if query:
        vms = vms.filter(Q(name_label__icontains=query) | Q(uuid__iexact=query))
    if pool is not None:
        vms = vms.filter(pool_id=pool)
    host = None
    if host_pk is not None:
        host = Host.objects.filter(pk=host_pk).only("pk", "pool_id", "ref", "name_label").first()
        if host is not None:
            vms = vms.filter(pool_id=host.pool_id, resident_on_ref=host.ref)
    vms = vms.order_by(*VM_SORTS[sort]).defer("record", "pool__member_urls")
    page = Paginator(vms, VMS_PER_PAGE).get_page(page_number)

    rows = list(page.object_list)
    disks = disks_of(rows)
    for vm in rows:
        vm.disks = disks.get((vm.pool_id, vm.ref), [])
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
            "host": host,
            "pools": Pool.objects.order_by("name").only("pk", "name"),
            "power_states": PowerState,
            "watch": current_watch(),
        },
    )
