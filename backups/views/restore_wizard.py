"""The restore wizard: from a VM's backups (also a VM that is no longer on its pool), pick a
restore point on a timeline, pick what to restore (the whole VM as a new VM, one disk to an SR,
one disk as a download in raw or VHD), pick where, confirm. The restore then runs on the
workers as a task with progress; its page ends with the checksum comparison of every restored
disk with the backup (backups/engine/restore_check.py), and offers the download.

The steps are plain GET forms that carry the choices made so far (the page is its own state,
the back button works); only the confirmation is a POST, and it needs the permission to restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib import messages
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.access import requires
from backups.choices import FileFormat, RestoreKind
from backups.models import Restore, RestorePoint
from backups.services import restores
from backups.views.points import MAX_POINTS
from pools.models import VM

#: What the wizard offers → the restore kind it records.
WHAT = {
    "vm": (RestoreKind.VM, "The whole VM, as a new VM"),
    "disk-sr": (RestoreKind.DISK_TO_SR, "One disk, as a new disk on an SR"),
    "download": (RestoreKind.DISK_TO_FILE, "One disk, as a download (raw or VHD)"),
}
WIDTH, LANE, LEFT, RIGHT = 900, 34, 110, 16


@dataclass
class Dot:
    point: RestorePoint
    x: float
    y: float
    full: bool
    selected: bool


def _timeline(points: list[RestorePoint], chosen: RestorePoint | None) -> tuple[list, list, int]:
    """Dots on one lane per remote, placed by time; the lanes' names; the SVG's height."""
    remotes = sorted({point.remote.name for point in points})
    start, end = points[0].taken_at, points[-1].taken_at
    span = max((end - start).total_seconds(), 60.0)
    dots = []
    for point in points:
        lane = remotes.index(point.remote.name)
        x = LEFT + (WIDTH - LEFT - RIGHT) * (point.taken_at - start).total_seconds() / span
        dots.append(
            Dot(
                point,
                round(x, 1),
                LANE * lane + LANE / 2 + 4,
                not any(disk.get("differencing") for disk in point.disks),
                chosen is not None and point.pk == chosen.pk,
            )
        )
    lanes = [(name, LANE * index + LANE / 2 + 8) for index, name in enumerate(remotes)]
    return dots, lanes, LANE * len(remotes) + 30


@requires("backups.view_restorepoint")
def restore_wizard(request: HttpRequest, vm_uuid: str) -> HttpResponse:
    points = list(
        RestorePoint.objects.filter(vm_uuid=vm_uuid)
        .select_related("remote")
        .order_by("-taken_at", "-pk")[:MAX_POINTS]
    )[::-1]
    if not points:
        raise Http404(f"no restore point of VM {vm_uuid}")
    errors: dict[str, str] = {}
    chosen = _choice(request, points, errors)
    what = request.GET.get("what", "")
    if chosen and what and what not in WHAT:
        errors["what"] = f"choose one of {', '.join(WHAT)}, not {what!r}"
        what = ""
    disk = request.GET.get("disk", "")
    if chosen and what in ("disk-sr", "download"):
        if not disk and len(chosen.disks) == 1:
            disk = chosen.disks[0]["vdi"]
        if disk and chosen.disk(disk) is None:
            errors["disk"] = f"backup {chosen.timestamp} has no disk {disk!r}"
            disk = ""
    srs = list(restores.restorable_srs())
    sr_uuid, file_format = request.GET.get("sr", ""), request.GET.get("format", "")
    where = ""
    if what == "download" and file_format:
        if file_format in FileFormat.values:
            where = f"a {file_format} file to download"
        else:
            errors["format"] = f"choose raw or vhd, not {file_format!r}"
    elif what in ("vm", "disk-sr") and sr_uuid:
        sr = next((sr for sr in srs if sr.uuid == sr_uuid), None)
        if sr is None:
            errors["sr"] = f"no connected SR with uuid {sr_uuid!r}: choose one of the list"
        else:
            where = f"SR {sr.name_label} of pool {sr.pool.name}"
    on_pool = VM.objects.guests().filter(uuid=vm_uuid).select_related("pool").first()
    # New MACs by default while the original VM exists: the copy may run beside it. Once the
    # "where" step is sent, an unticked box (absent from the query) means the backup's MACs.
    new_macs = "new_macs" in request.GET if sr_uuid else on_pool is not None
    dots, lanes, height = _timeline(points, chosen)
    name = points[-1].vm_name or vm_uuid
    return render(
        request,
        "backups/restore_wizard.html",
        {
            "vm_uuid": vm_uuid,
            "vm_name": name,
            "on_pool": on_pool,
            "new_macs": new_macs,
            "points": points[::-1],
            "dots": dots,
            "lanes": lanes,
            "height": height,
            "width": WIDTH,
            "chosen": chosen,
            "what": what,
            "what_choices": [(key, label) for key, (_kind, label) in WHAT.items()],
            "what_label": WHAT[what][1] if what else "",
            "needs_disk": what in ("disk-sr", "download"),
            "disk": disk,
            "disk_name": (chosen.disk(disk) or {}).get("name", "") if chosen and disk else "",
            "srs": srs,
            "sr_uuid": sr_uuid,
            "file_format": file_format,
            "formats": FileFormat.choices,
            "where": where,
            "ready": bool(chosen and what and where and (disk or what == "vm")),
            "errors": errors,
        },
    )


def _choice(request: HttpRequest, points: list[RestorePoint], errors: dict) -> RestorePoint | None:
    raw = request.GET.get("point", "")
    if not raw:
        return None
    chosen = next((point for point in points if str(point.pk) == raw), None)
    if chosen is None:
        errors["point"] = f"no restore point {raw!r} of this VM: pick one on the timeline"
    return chosen


@requires("backups.restore_restorepoint", methods=["POST"])
def restore_wizard_confirm(request: HttpRequest, vm_uuid: str) -> HttpResponse:
    if not RestorePoint.objects.filter(vm_uuid=vm_uuid).exists():
        raise Http404(f"no restore point of VM {vm_uuid}")
    raw = request.POST.get("point", "")
    point = (
        RestorePoint.objects.select_related("remote").filter(pk=raw, vm_uuid=vm_uuid).first()
        if raw.isdigit()
        else None
    )
    wizard = reverse("backups:restore_wizard", args=[vm_uuid])
    if point is None:
        messages.error(request, f"Point: no restore point {raw!r} of this VM; nothing was done.")
        return redirect(wizard)
    what = request.POST.get("what", "")
    if what not in WHAT:
        messages.error(request, f"What: choose one of {', '.join(WHAT)}; nothing was done.")
        return redirect(f"{wizard}?point={point.pk}")
    try:
        restore = restores.request(
            point,
            WHAT[what][0],
            vdi_uuid=request.POST.get("disk", ""),
            sr_uuid=request.POST.get("sr", ""),
            file_format=request.POST.get("format", FileFormat.RAW),
            new_macs=what == "vm" and request.POST.get("new_macs") == "1",
            requested_by=request.user.get_username(),
        )
    except restores.RestoreRefused as refused:
        messages.error(
            request, f"{refused.field.replace('_', ' ').title()}: {refused}; nothing was done."
        )
        return redirect(f"{wizard}?point={point.pk}&what={what}")
    messages.info(request, f"Restore {restore.pk} queued on the workers.")
    return redirect(restore)


@requires("backups.restore_restorepoint")
def restore_download(request: HttpRequest, pk: int) -> FileResponse:
    """The file of a finished restore "as a download", from the restore folder of this host."""
    restore = get_object_or_404(Restore, pk=pk, kind=RestoreKind.DISK_TO_FILE)
    why = restores.not_downloadable(restore)
    if why is not None:
        raise Http404(why)
    path = Path(restore.file_path).resolve()
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)
