"""Restore points of a VM with their restore actions, and the page of one restore."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.access import is_htmx, requires
from backups.choices import FileFormat, RestoreKind, RestoreStatus
from backups.models import Restore, RestorePoint
from backups.services import restores, verification

MAX_POINTS = 500


@requires("backups.view_restorepoint")
def vm_points(request: HttpRequest, vm_uuid: str) -> HttpResponse:
    points = list(
        RestorePoint.objects.filter(vm_uuid=vm_uuid)
        .select_related("remote")
        .order_by("-taken_at", "-pk")[:MAX_POINTS]
    )
    if not points:
        raise Http404(f"no restore point of VM {vm_uuid}")
    verdicts = verification.verdicts_of(points)
    for point in points:
        point.verdict = verdicts.get(point.pk)
    return render(
        request,
        "backups/vm_points.html",
        {
            "vm_uuid": vm_uuid,
            "vm_name": points[0].vm_name,
            "points": points,
            "srs": list(restores.restorable_srs()),
            "formats": FileFormat.choices,
            "restores": Restore.objects.filter(vm_uuid=vm_uuid)[:20],
        },
    )


@requires("backups.view_restorepoint")
def point_list(request: HttpRequest) -> HttpResponse:
    """One line per VM that has restore points: its name, count and newest backup."""
    from django.db.models import Count, Max

    vms = (
        RestorePoint.objects.values("vm_uuid")
        .annotate(count=Count("pk"), newest=Max("taken_at"), name=Max("vm_name"))
        .order_by("name", "vm_uuid")
    )
    return render(request, "backups/point_list.html", {"vms": vms})


@requires("backups.restore_restorepoint", methods=["POST"])
def point_restore(request: HttpRequest, pk: int) -> HttpResponse:
    point = get_object_or_404(RestorePoint.objects.select_related("remote"), pk=pk)
    kind = request.POST.get("kind", "")
    target = request.POST.get("target", "sr")
    if kind == "disk" and target == "file":
        kind = RestoreKind.DISK_TO_FILE
    elif kind == "disk":
        kind = RestoreKind.DISK_TO_SR
    try:
        restore = restores.request(
            point,
            kind,
            vdi_uuid=request.POST.get("disk", ""),
            sr_uuid=request.POST.get("sr", ""),
            file_format=request.POST.get("format", FileFormat.RAW),
            requested_by=request.user.get_username(),
        )
    except restores.RestoreRefused as refused:
        messages.error(request, f"{refused.field.replace('_', ' ').title()}: {refused}")
        return redirect("backups:vm_points", vm_uuid=point.vm_uuid)
    messages.info(request, f"Restore {restore.pk} queued on the workers.")
    return redirect(restore)


@requires("backups.view_restorepoint")
def restore_detail(request: HttpRequest, pk: int) -> HttpResponse:
    restore = get_object_or_404(Restore.objects.select_related("remote", "task"), pk=pk)
    template = "backups/_restore_body.html" if is_htmx(request) else "backups/restore_detail.html"
    context = {"restore": restore, "poll_seconds": 2}
    if restore.kind == RestoreKind.DISK_TO_FILE and restore.status == RestoreStatus.SUCCESS:
        context["not_downloadable"] = restores.not_downloadable(restore)
    return render(request, template, context)
