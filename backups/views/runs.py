"""The run page: its VMs, per disk the mode and the reason, and its live task tree (htmx)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from accounts.access import is_htmx, requires
from backups.commandline import run_json
from backups.models import BackupRun
from tasks.listing import MAX_TREE_ROWS
from tasks.models import Task
from tasks.presenters import build_tree

POLL_SECONDS = 2


def _tree(run: BackupRun):
    if run.task_id is None:
        return None
    rows = list(
        Task.objects.trees([run.task_id]).select_related("pool").order_by("pk")[:MAX_TREE_ROWS]
    )
    tops = build_tree(rows)
    return tops[0] if tops else None


@requires("backups.view_backuprun")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BackupRun.objects.select_related("job", "schedule"), pk=pk)
    vm_backups = run.vm_backups.prefetch_related("disks").select_related("pool")
    context = {
        "run": run,
        "vm_backups": vm_backups,
        "tree": _tree(run),
        "poll_seconds": POLL_SECONDS,
        # What the schedule proved after the run (verification, restore tests).
        "verifications": run.verifications.select_related("remote"),
        "health_checks": run.health_checks.all(),
    }
    template = "backups/_run_body.html" if is_htmx(request) else "backups/run_detail.html"
    return render(request, template, context)


@requires("backups.view_backuprun", json=True)
def run_detail_json(request: HttpRequest, pk: int) -> JsonResponse:
    run = get_object_or_404(BackupRun.objects.select_related("job", "schedule"), pk=pk)
    return JsonResponse(run_json(run), json_dumps_params={"default": str})
