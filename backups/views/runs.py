"""Run pages: the history of runs across jobs (filters: status, job, pool), a run's page (its
report per VM and disk, and its live task tree, polled with htmx), its JSON, and cancel (a run
or one VM of it: what waits is cancelled, what runs stops within seconds on its worker)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Exists, OuterRef
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from accounts.access import is_htmx, requires
from backups.choices import RunStatus
from backups.commandline import run_json
from backups.models import BackupJob, BackupRun, VmBackup
from backups.services import cancel, reports
from backups.views.summaries import with_disk_summaries
from pools.models import Pool
from tasks.listing import MAX_TREE_ROWS
from tasks.models import Task
from tasks.presenters import build_tree
from xoweb.errors import bad_request_response
from xoweb.params import BadParameter, parse_choice, parse_id, parse_page

POLL_SECONDS = 2
RUNS_PER_PAGE = 25


def _tree(run: BackupRun):
    if run.task_id is None:
        return None
    rows = list(
        Task.objects.trees([run.task_id]).select_related("pool").order_by("pk")[:MAX_TREE_ROWS]
    )
    tops = build_tree(rows)
    return tops[0] if tops else None


def filtered_runs(status: str, job_id: int | None, pool_id: int | None):
    """Runs newest first, with the filters of the run list (one query, plus the count)."""
    runs = BackupRun.objects.select_related("job", "schedule").order_by("-created", "-pk")
    if status:
        runs = runs.filter(status=status)
    if job_id is not None:
        runs = runs.filter(job_id=job_id)
    if pool_id is not None:
        # A run is of a pool when one of its VMs is: a job's rule may span one pool, explicit
        # VMs several.
        runs = runs.filter(Exists(VmBackup.objects.filter(run=OuterRef("pk"), pool_id=pool_id)))
    return runs


@requires("backups.view_backuprun")
def run_list(request: HttpRequest) -> HttpResponse:
    try:
        status = parse_choice("status", request.GET.get("status"), RunStatus.values, "")
        job_id = parse_id("job", request.GET.get("job"))
        pool_id = parse_id("pool", request.GET.get("pool"))
        page_number = parse_page(request.GET.get("page"))
    except BadParameter as error:
        return bad_request_response(request, str(error))
    page = Paginator(filtered_runs(status, job_id, pool_id), RUNS_PER_PAGE).get_page(page_number)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "backups/run_list.html",
        {
            "page": page,
            "runs": with_disk_summaries(page.object_list),
            "statuses": RunStatus.choices,
            "jobs": BackupJob.objects.order_by("name").only("pk", "name"),
            "pools": Pool.objects.order_by("name").only("pk", "name"),
            "chosen": {"status": status, "job": job_id, "pool": pool_id},
            "query": query.urlencode(),
        },
    )


@requires("backups.view_backuprun")
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(BackupRun.objects.select_related("job", "schedule"), pk=pk)
    context = {
        "run": run,
        "report": reports.build(run),
        "tree": _tree(run),
        "poll_seconds": POLL_SECONDS,
        "vm_links": True,
        "can_cancel": request.user.has_perm("backups.run_backupjob") and not run.is_final,
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


@requires("backups.run_backupjob", methods=["POST"])
def run_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    """Cancel the run, or with ``vm`` (a VM backup's id) only that VM of it."""
    run = get_object_or_404(BackupRun.objects.select_related("job"), pk=pk)
    by = request.user.get_username()
    try:
        vm_id = parse_id("vm", request.POST.get("vm"))
    except BadParameter as error:
        return bad_request_response(request, str(error))
    try:
        if vm_id is None:
            said = cancel.cancel_run(run, by=by)
        else:
            vm_backup = get_object_or_404(VmBackup, pk=vm_id, run=run)
            said = cancel.cancel_vm(vm_backup, by=by)
    except cancel.CancelRefused as refused:
        messages.error(request, f"Nothing cancelled: {refused}")
    else:
        messages.info(request, said[0].upper() + said[1:] + ".")
    return redirect(run)
