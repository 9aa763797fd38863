"""What proves a backup: a restore point's page (its chains and last verification, its restore
tests), verifications and restore tests asked for on the pages, and their own pages."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.access import is_htmx, requires
from backups.choices import CheckTrigger
from backups.models import (
    FileVerdict,
    HealthCheck,
    Remote,
    RestorePoint,
    Verification,
)
from backups.services import health_checks, verification
from backups.services.restores import RestoreRefused, live_sr, restorable_srs

POLL_SECONDS = 2
DEFAULT_HEALTH_CHECK_TIMEOUT = 600


def _chains(point: RestorePoint, verdict) -> list[dict]:
    """Each disk of the point with its chain, newest file first, and each file's verdict.

    The chain is the one the last verification read in the files' headers; before any, it is
    inferred from the index (the earlier backups of the same disk, back to its last full)."""
    if verdict is not None and verdict.chains:
        chains = {vdi: list(files) for vdi, files in verdict.chains.items()}
    else:
        chains = _chains_from_index(point)
    paths = {path for files in chains.values() for path in files}
    files = {
        row.path: row for row in FileVerdict.objects.filter(remote=point.remote, path__in=paths)
    }
    disks = []
    for disk in point.disks:
        chain = chains.get(disk.get("vdi"), [disk.get("file")])
        disks.append(
            {
                "disk": disk,
                "files": [{"path": path, "verdict": files.get(path)} for path in chain],
                "inferred": verdict is None or not verdict.chains,
            }
        )
    return disks


def _chains_from_index(point: RestorePoint) -> dict[str, list[str]]:
    earlier = list(
        RestorePoint.objects.filter(
            remote=point.remote, vm_uuid=point.vm_uuid, taken_at__lte=point.taken_at
        )
        .order_by("-taken_at", "-pk")
        .only("disks", "path")
    )
    chains = {}
    for disk in point.disks:
        folder = (disk.get("file") or "").rsplit("/", 1)[0]
        files = []
        for other in earlier:
            match = next(
                (d for d in other.disks if (d.get("file") or "").rsplit("/", 1)[0] == folder),
                None,
            )
            if match is None:
                continue
            files.append(match["file"])
            if not match.get("differencing"):
                break
        chains[disk.get("vdi")] = files
    return chains


@requires("backups.view_restorepoint")
def point_detail(request: HttpRequest, pk: int) -> HttpResponse:
    point = get_object_or_404(RestorePoint.objects.select_related("remote"), pk=pk)
    verdict = verification.verdicts_of([point]).get(point.pk)
    return render(
        request,
        "backups/point_detail.html",
        {
            "point": point,
            "verdict": verdict,
            "disks": _chains(point, verdict),
            "health_checks": HealthCheck.objects.filter(
                remote=point.remote, backup_path=point.path
            )[:20],
            "srs": list(restorable_srs()),
        },
    )


@requires("backups.verify_restorepoint", methods=["POST"])
def point_verify(request: HttpRequest, pk: int) -> HttpResponse:
    point = get_object_or_404(RestorePoint.objects.select_related("remote"), pk=pk)
    checked = verification.request(
        point.remote,
        deep=request.POST.get("deep") == "on",
        vm_uuids=[point.vm_uuid],
        requested_by=request.user.get_username(),
    )
    messages.info(
        request,
        f"{'Deep check' if checked.deep else 'Check'} {checked.pk} of VM "
        f"{point.vm_name or point.vm_uuid} on {point.remote.name} queued on the workers.",
    )
    return redirect(checked)


@requires("backups.verify_restorepoint", methods=["POST"])
def point_health_check(request: HttpRequest, pk: int) -> HttpResponse:
    point = get_object_or_404(RestorePoint.objects.select_related("remote"), pk=pk)
    try:
        timeout = int(request.POST.get("timeout") or DEFAULT_HEALTH_CHECK_TIMEOUT)
        if not 1 <= timeout <= 24 * 3600:
            raise ValueError
    except ValueError:
        messages.error(request, "Timeout: give a number of seconds from 1 to 86400.")
        return redirect("backups:point_detail", pk=point.pk)
    try:
        sr = live_sr(request.POST.get("sr", ""))
        why = verification.refusal(point)
        if why is not None:
            raise RestoreRefused("point", why)
    except RestoreRefused as refused:
        messages.error(request, f"{'SR' if refused.field == 'sr' else 'Point'}: {refused}")
        return redirect("backups:point_detail", pk=point.pk)
    check = health_checks.request(
        point.remote,
        point.path,
        vm_uuid=point.vm_uuid,
        vm_name=point.vm_name,
        timestamp=point.timestamp,
        sr_uuid=sr.uuid,
        timeout=timeout,
        trigger=CheckTrigger.PAGE,
        requested_by=request.user.get_username(),
    )
    messages.info(request, f"Restore test {check.pk} queued on the workers.")
    return redirect(check)


@requires("backups.verify_restorepoint", methods=["POST"])
def remote_verify(request: HttpRequest, pk: int) -> HttpResponse:
    remote = get_object_or_404(Remote, pk=pk)
    checked = verification.request(
        remote, deep=request.POST.get("deep") == "on", requested_by=request.user.get_username()
    )
    messages.info(request, f"Verification {checked.pk} of {remote.name} queued on the workers.")
    return redirect(checked)


@requires("backups.view_verification")
def verification_detail(request: HttpRequest, pk: int) -> HttpResponse:
    checked = get_object_or_404(Verification.objects.select_related("remote", "run", "task"), pk=pk)
    points = {
        point.path: point
        for point in RestorePoint.objects.filter(
            remote=checked.remote, path__in=[failure["path"] for failure in checked.failures]
        )
    }
    failures = [{**failure, "point": points.get(failure["path"])} for failure in checked.failures]
    template = (
        "backups/_verification_body.html"
        if is_htmx(request)
        else "backups/verification_detail.html"
    )
    return render(
        request,
        template,
        {"verification": checked, "failures": failures, "poll_seconds": POLL_SECONDS},
    )


@requires("backups.view_healthcheck")
def health_check_detail(request: HttpRequest, pk: int) -> HttpResponse:
    check = get_object_or_404(HealthCheck.objects.select_related("remote", "run", "task"), pk=pk)
    point = RestorePoint.objects.filter(remote=check.remote, path=check.backup_path).first()
    template = (
        "backups/_health_check_body.html"
        if is_htmx(request)
        else "backups/health_check_detail.html"
    )
    return render(request, template, {"check": check, "point": point, "poll_seconds": POLL_SECONDS})
