"""The run commands a script uses: ``run_list [--job] [--status] [--json]``, ``run_show RUN
[--json]`` and ``job_cancel RUN [--vm UUID]``, with their JSON keys and their refusals (one
line naming the option, nothing changed)."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from backups.models import BackupRun, VmBackup
from tests.backups.test_run_pages import finished_run

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_run_list_gives_each_run_and_the_state_of_its_vms(make_job) -> None:
    nightly, weekly = make_job("nightly"), make_job("weekly")
    ok = finished_run(nightly)
    bad = finished_run(nightly, status="failed")
    VmBackup.objects.filter(run=bad).update(worker="host-a:123")
    finished_run(weekly)

    listed = json.loads(run_command("run_list", "--job", "nightly", "--json"))
    assert [run["id"] for run in listed] == [bad.pk, ok.pk]
    first = listed[0]
    assert set(first) >= {"id", "job", "schedule", "trigger", "status", "started", "ended", "vms"}
    assert (first["job"], first["trigger"], first["status"]) == ("nightly", "schedule", "failed")
    for vm in first["vms"]:
        assert set(vm) >= {"uuid", "status", "worker", "error"} and "disks" not in vm
        assert (vm["status"], vm["worker"]) == ("failed", "host-a:123")
        assert vm["error"] == "the pool refused the export"
    assert [
        run["id"] for run in json.loads(run_command("run_list", "--status", "failed", "--json"))
    ] == [bad.pk]

    text = run_command("run_list", "--job", "nightly")
    assert f"run {bad.pk}  nightly  [run now, schedule]  failed" in text
    assert "    web0 (uuid-" in text and "failed on host-a:123: the pool refused the export" in text

    with pytest.raises(
        CommandError, match=r"--status: 'broken' is not a run status \(choose from "
    ):
        run_command("run_list", "--status", "broken")
    with pytest.raises(CommandError, match="JOB: no job 'nope'"):
        run_command("run_list", "--job", "nope")


def test_run_show_gives_per_disk_the_mode_the_reason_and_the_bytes(make_job) -> None:
    run = finished_run(make_job("nightly"))
    shown = json.loads(run_command("run_show", str(run.pk), "--json"))
    assert shown["id"] == run.pk and shown["status"] == "success"
    disk = shown["vms"][0]["disks"][0]
    assert set(disk) >= {"vdi", "mode", "reason", "bytes", "size", "duration"}
    assert (disk["mode"], disk["reason"], disk["bytes"]) == ("full", "full: first backup", 64 << 20)
    text = run_command("run_show", str(run.pk))
    assert f"run {run.pk} of job nightly (run now, Schedule): success" in text
    assert "  VM web0 (uuid-" in text and "): backed up" in text
    assert (
        "    system: full (full: first backup); size 1.00 GiB, 64.0 MiB written in 4 s at 16.0 MiB/s"
        in text
    )
    with pytest.raises(CommandError, match=r"RUN: no run '999999' \(see manage.py run_list\)"):
        run_command("run_show", "999999")


def test_job_cancel_refuses_what_it_cannot_cancel(make_job) -> None:
    run = finished_run(make_job("nightly"))
    with pytest.raises(CommandError) as refused:
        run_command("job_cancel", str(run.pk))
    assert str(refused.value) == (
        f"run {run.pk} of job nightly already ended (success): nothing to cancel"
    )
    with pytest.raises(CommandError, match=rf"--vm: run {run.pk} has no VM 'db' \(its VMs: web0"):
        run_command("job_cancel", str(run.pk), "--vm", "db")
    waiting = BackupRun.objects.create(job=run.job, trigger="page")
    assert run_command("job_cancel", str(waiting.pk)).strip() == (
        f"run {waiting.pk} cancelled before it started"
    )
    waiting.refresh_from_db()
    assert (waiting.status, waiting.cancelled_by) == ("cancelled", "manage.py job_cancel")
