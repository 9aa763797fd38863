"""Job pages: list (with each job's last run), add and edit with the schedules inline, detail
with its runs and the retention dry run, "run now" (queued on the workers) and delete."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from accounts.access import requires
from backups.choices import Trigger
from backups.forms import BackupJobForm, ScheduleFormSet
from backups.models import BackupJob
from backups.overview import jobs_with_last_run
from backups.services import maintenance, plan_preview, runs
from backups.views.summaries import with_disk_summaries

RUNS_PER_PAGE = 25


@requires("backups.view_backupjob")
def job_list(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/job_list.html", {"jobs": jobs_with_last_run()})


@requires("backups.view_backupjob")
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(
        BackupJob.objects.select_related("pool").prefetch_related("remotes", "schedules"), pk=pk
    )
    page = Paginator(job.runs.select_related("schedule"), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    now = timezone.now()
    schedules = [
        (schedule, schedule.next_runs(now, 3) if schedule.enabled else [])
        for schedule in job.schedules.all()
    ]
    return render(
        request,
        "backups/job_detail.html",
        {
            "job": job,
            "page": page,
            "runs": with_disk_summaries(page.object_list),
            "schedules": schedules,
            "preview": plan_preview.preview(job, now=now),
            # What retention would drop now, from the restore point index (no remote read).
            "prune": maintenance.preview(job),
        },
    )


@requires("backups.add_backupjob", methods=["GET", "POST"])
def job_add(request: HttpRequest) -> HttpResponse:
    return _job_form(request, BackupJob())


@requires("backups.change_backupjob", methods=["GET", "POST"])
def job_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _job_form(request, get_object_or_404(BackupJob, pk=pk))


def _job_form(request: HttpRequest, job: BackupJob) -> HttpResponse:
    adding = job.pk is None
    form = BackupJobForm(request.POST or None, instance=job)
    schedules = ScheduleFormSet(request.POST or None, instance=job, prefix="schedules")
    if request.method == "POST" and form.is_valid() and schedules.is_valid():
        with transaction.atomic():
            job = form.save()
            schedules.instance = job
            schedules.save()
        messages.success(request, f"Job {job.name} {'added' if adding else 'saved'}.")
        return redirect(job)
    return render(
        request,
        "backups/job_form.html",
        {"form": form, "schedules": schedules, "job": job, "adding": adding},
    )


@requires("backups.view_backupjob")
def job_plan(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """The plan preview of the job form as it is being filled (htmx sends the form's fields;
    nothing is saved). Without fields, a saved job's plan as it is."""
    job = get_object_or_404(BackupJob, pk=pk) if pk else BackupJob()
    context: dict = {}
    if not request.GET and job.pk:
        context["preview"] = plan_preview.preview(job)
    else:
        form = BackupJobForm(request.GET, instance=job)
        schedules = ScheduleFormSet(request.GET, instance=job, prefix="schedules")
        if form.is_valid() and schedules.is_valid():
            draft = form.save(commit=False)
            drafts = [
                schedule.save(commit=False)
                for schedule in schedules.forms
                if schedule.has_changed() and not schedule.cleaned_data.get("DELETE")
            ]
            drafts += [
                schedule.instance
                for schedule in schedules.forms
                if not schedule.has_changed() and schedule.instance.pk
            ]
            context["preview"] = plan_preview.preview(
                draft, schedules=drafts, remotes=list(form.cleaned_data["remotes"])
            )
        else:
            context["plan_errors"] = _first_errors(form, schedules)
    return render(request, "backups/_plan_preview.html", context)


def _first_errors(form, schedules) -> str:
    """The form's errors in one line, each naming its field."""
    errors = [
        f"{form[name].label if name in form.fields else 'the form'}: {problems[0].rstrip('.')}"
        for name, problems in form.errors.items()
    ]
    for number, schedule in enumerate(schedules.forms, start=1):
        errors += [
            f"schedule {number}, {schedule[name].label if name in schedule.fields else name}: "
            f"{problems[0].rstrip('.')}"
            for name, problems in schedule.errors.items()
        ]
    return "; ".join(errors) or "fill in the form"


@requires("backups.delete_backupjob", methods=["POST"])
def job_delete(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(BackupJob, pk=pk)
    if job.runs.filter(status__in=["pending", "running"]).exists():
        messages.error(request, f"Job {job.name} has a run in progress: nothing was deleted.")
        return redirect(job)
    job.delete()
    messages.success(
        request, f"Job {job.name} deleted with its schedules and run history; backups stay."
    )
    return redirect("backups:job_list")


@requires("backups.run_backupjob", methods=["POST"])
def job_run(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(BackupJob, pk=pk)
    schedule = None
    schedule_id = request.POST.get("schedule", "")
    if schedule_id:
        schedule = job.schedules.filter(pk=schedule_id).first() if schedule_id.isdigit() else None
        if schedule is None:
            messages.error(request, f"Schedule: job {job.name} has no schedule {schedule_id!r}.")
            return redirect(job)
    run = runs.request_run(
        job,
        trigger=Trigger.PAGE,
        schedule=schedule,
        force_full=request.POST.get("force_full") == "on",
        requested_by=request.user.get_username(),
    )
    messages.info(request, f"Run {run.pk} of {job.name} queued on the workers.")
    return redirect(run)


@requires("backups.change_backupjob", methods=["POST"])
def job_prune(request: HttpRequest, pk: int) -> HttpResponse:
    """Apply the job's retention now (on the workers): what the dry run below lists goes."""
    from backups.tasks import prune_job

    job = get_object_or_404(BackupJob, pk=pk)
    transaction.on_commit(lambda: prune_job.delay(job.pk))
    messages.info(request, f"Retention of {job.name} queued on the workers (see Tasks).")
    return redirect(job)
