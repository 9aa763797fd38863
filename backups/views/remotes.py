"""Remote pages: list, add (with the write test), detail (space, restore points with their
chains and their last verification, the recent verifications, the last clean pass of each VM
folder), edit, delete, and buttons that queue a check, an index rebuild or a clean pass (or
its dry run) on the workers."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.access import requires
from backups.forms import RemoteForm
from backups.models import Remote
from backups.services import outlook, verification

POINTS_PER_PAGE = 50
VERIFICATIONS_SHOWN = 10


@requires("backups.view_remote")
def remote_list(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/remote_list.html", {"remotes": Remote.objects.order_by("name")})


@requires("backups.view_remote")
def remote_detail(request: HttpRequest, pk: int) -> HttpResponse:
    remote = get_object_or_404(Remote, pk=pk)
    points = remote.restore_points.order_by("-taken_at", "-pk")
    page = Paginator(points, POINTS_PER_PAGE).get_page(request.GET.get("page"))
    verdicts = verification.verdicts_of(page.object_list)
    for point in page.object_list:
        point.verdict = verdicts.get(point.pk)
    reports = remote.clean_reports.order_by("-checked_at", "vm_uuid")
    names = dict(
        remote.restore_points.filter(vm_uuid__in=[r.vm_uuid for r in reports])
        .values_list("vm_uuid", "vm_name")
        .distinct()
    )
    return render(
        request,
        "backups/remote_detail.html",
        {
            "remote": remote,
            "page": page,
            "jobs": remote.jobs.order_by("name"),
            "outlook": outlook.for_page(remote),
            "warn_days": settings.OUTLOOK_WARN_DAYS,
            "window_days": settings.OUTLOOK_WINDOW_DAYS,
            "verifications": remote.verifications.select_related("remote")[:VERIFICATIONS_SHOWN],
            "reports": [(report, names.get(report.vm_uuid, "")) for report in reports],
        },
    )


@requires("backups.add_remote", methods=["GET", "POST"])
def remote_add(request: HttpRequest) -> HttpResponse:
    return _remote_form(request, Remote())


@requires("backups.change_remote", methods=["GET", "POST"])
def remote_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _remote_form(request, get_object_or_404(Remote, pk=pk))


def _remote_form(request: HttpRequest, remote: Remote) -> HttpResponse:
    adding = remote.pk is None
    form = RemoteForm(request.POST or None, instance=remote)
    if request.method == "POST" and form.is_valid():
        remote = form.save()
        note = f": {remote.status_message}" if form.check_result else " (not tested)"
        messages.success(request, f"Remote {remote.name} {'added' if adding else 'saved'}{note}.")
        return redirect(remote)
    return render(
        request, "backups/remote_form.html", {"form": form, "remote": remote, "adding": adding}
    )


@requires("backups.delete_remote", methods=["POST"])
def remote_delete(request: HttpRequest, pk: int) -> HttpResponse:
    remote = get_object_or_404(Remote, pk=pk)
    jobs = list(remote.jobs.values_list("name", flat=True))
    if jobs:
        messages.error(
            request,
            f"Remote {remote.name} is used by job(s) {', '.join(jobs)}: "
            "take it out of them first. Nothing was deleted.",
        )
        return redirect(remote)
    remote.delete()
    messages.success(
        request, f"Remote {remote.name} removed from xoweb; its files were left untouched."
    )
    return redirect("backups:remote_list")


@requires("backups.change_remote", methods=["POST"])
def remote_check(request: HttpRequest, pk: int) -> HttpResponse:
    from backups.tasks import check_remote, rebuild_restore_points

    remote = get_object_or_404(Remote, pk=pk)
    if request.POST.get("what") == "index":
        transaction.on_commit(lambda: rebuild_restore_points.delay(remote.pk))
        messages.info(request, f"Re-reading the backups on {remote.name} (on the workers).")
    else:
        transaction.on_commit(lambda: check_remote.delay(remote.pk))
        messages.info(request, f"Checking {remote.name} (on the workers); reload in a moment.")
    return redirect(remote)


@requires("backups.change_remote", methods=["POST"])
def remote_clean(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue the clean pass over the remote's VM folders (or its dry run) on the workers."""
    from backups.tasks import clean_remote

    remote = get_object_or_404(Remote, pk=pk)
    dry_run = request.POST.get("dry_run") == "1"
    transaction.on_commit(lambda: clean_remote.delay(remote.pk, dry_run))
    what = "A dry run of the clean pass" if dry_run else "The clean pass"
    messages.info(
        request,
        f"{what} of {remote.name} is queued on the workers; its findings appear in its task "
        "(Tasks) and, for a real pass, below.",
    )
    return redirect(remote)
