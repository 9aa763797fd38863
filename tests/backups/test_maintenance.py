"""Retention, merges and the clean pass from the Django side: ``backup_clean`` and
``backup_prune`` (with ``--dry-run`` and ``--json``), the clean reports and chains on the remote
page, the retention dry run on the job page, the long-term retention of a schedule.

Backups are written straight onto the remote folders (tests/engine/synthetic.py): these tests
are about what the commands and pages do with them, the engine's own tests prove the files."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from backups.engine import RemoteAdapter
from backups.models import BackupJob, CleanReport, RestorePoint, Schedule
from backups.services import restore_points
from tests.engine.synthetic import DAILY, JOB_ID, WEEKLY, SyntheticVm, restores_exactly, vhd_files

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def site(make_remote, tmp_path):
    """A remote holding five daily backups and one weekly of a VM (two disks), a job with
    those two schedules (keep 2 daily, 1 weekly), and the restore point index."""
    remote = make_remote("nas")
    job = BackupJob.objects.create(name="nightly", uuid=JOB_ID, vm_uuids=["x"])
    job.remotes.set([remote])
    Schedule.objects.create(job=job, name="daily", uuid=DAILY, cron="0 1 * * *", retention=2)
    Schedule.objects.create(job=job, name="weekly", uuid=WEEKLY, cron="0 3 * * 0", retention=1)
    vm = SyntheticVm.make(RemoteAdapter(Path(remote.path)), disks=2, blocks=4)
    stamps = []
    for number in range(6):
        vm.write(2)
        stamps.append(vm.backup(schedule=WEEKLY if number == 2 else DAILY))
    restore_points.rebuild(remote)
    return remote, job, vm, stamps


def folder_state(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_backup_prune_dry_run_lists_what_would_go_and_why_and_changes_nothing(site):
    remote, _job, vm, stamps = site
    before = folder_state(Path(remote.path))
    data = json.loads(run("backup_prune", "--job", "nightly", "--dry-run", "--json"))
    assert folder_state(Path(remote.path)) == before
    [result] = data
    assert result["remote"] == "nas"
    [folder] = result["vms"]
    assert folder["vm"] == vm.uuid and folder["dry_run"] is True
    verdicts = {(v["timestamp"], v["keep"]): v["reason"] for v in folder["retention"]}
    daily = [ts for n, ts in enumerate(stamps) if n != 2]
    for ts in daily[:-2]:
        assert verdicts[(ts, False)] == "dropped: older than the newest 2"
    for ts in daily[-2:]:
        assert verdicts[(ts, True)] == "kept: one of the newest 2"
    assert verdicts[(stamps[2], True)] == "kept: one of the newest 1"
    text = run("backup_prune", "--dry-run")
    assert f"would drop  nas  {vm.uuid}  {daily[0]}  dropped: older than the newest 2" in text


def test_backup_prune_drops_merges_and_the_index_follows(site):
    remote, job, vm, stamps = site
    text = run("backup_prune", "--job", str(job.pk))
    adapter = RemoteAdapter(Path(remote.path))
    kept = {entry.timestamp for entry in adapter.list_backups()}
    assert kept == {stamps[2], stamps[4], stamps[5]}
    assert f"drop        nas  {vm.uuid}  {stamps[0]}" in text
    assert restores_exactly(adapter, vm.expected) == 6
    assert len(vhd_files(adapter)) == 6  # merged: one file per kept backup and disk
    assert set(RestorePoint.objects.values_list("timestamp", flat=True)) == kept
    report = CleanReport.objects.get(remote=remote, vm_uuid=vm.uuid)
    assert report.trigger == "manage.py backup_prune"
    assert {d["timestamp"] for d in report.dropped} == {stamps[0], stamps[1], stamps[3]}
    assert report.merges_done == 4  # two runs of unused deltas, on each of two disks
    # Twice: nothing more to do.
    again = json.loads(run("backup_prune", "--json"))
    assert [f for f in again[0]["vms"][0]["findings"]] == []
    assert all(v["keep"] for v in again[0]["vms"][0]["retention"])


def test_backup_clean_repairs_what_a_crash_left_and_a_dry_run_only_says_so(site):
    remote, _job, vm, stamps = site
    root = Path(remote.path) / "xo-vm-backups" / vm.uuid
    (root / f".{stamps[5]}.json.0badf00d.partial").write_bytes(b"{")
    (root / f"{stamps[4]}.json").unlink()  # a metadata deleted by retention, files left
    before = folder_state(Path(remote.path))
    dry = json.loads(run("backup_clean", "--remote", "nas", "--dry-run", "--json"))
    assert folder_state(Path(remote.path)) == before
    kinds = {(f["kind"], f["action"], f["done"]) for f in dry[0]["vms"][0]["findings"]}
    assert ("temporary", "would be deleted", False) in kinds
    assert any(kind == "unused_merge" and not done for kind, _action, done in kinds)
    assert not CleanReport.objects.exists()  # a dry run is not recorded

    text = run("backup_clean", "--vm", vm.uuid)
    assert "[temporary]" in text and "→ deleted" in text
    assert "[unused_merge]" in text and "merged into" in text
    adapter = RemoteAdapter(Path(remote.path))
    assert restores_exactly(adapter, vm.expected) == 10
    assert not [p for p in Path(remote.path).rglob(".*")]
    report = CleanReport.objects.get(vm_uuid=vm.uuid)
    assert report.trigger == "manage.py backup_clean" and report.merges_done == 2
    assert run("backup_clean", "--json").count('"done": true') == 0  # nothing left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backup_clean", "--vm", "not-a-uuid"], "--vm: 'not-a-uuid' is not a VM uuid"),
        (["backup_clean", "--merges", "-1"], "--merges: '-1' is not a whole number"),
        (["backup_clean", "--remote", "nope"], "--remote: no remote 'nope' (remotes: nas)"),
        (["backup_prune", "--job", "nope"], "JOB: no job 'nope'"),
    ],
)
def test_the_commands_name_the_option_at_fault(site, args, message):
    remote = site[0]
    before = folder_state(Path(remote.path))
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(*args)
    assert folder_state(Path(remote.path)) == before


def test_the_job_page_shows_the_retention_dry_run_from_the_index(site, client):
    remote, job, _vm, stamps = site
    before = folder_state(Path(remote.path))
    page = client.get(job.get_absolute_url()).content.decode()
    assert folder_state(Path(remote.path)) == before
    assert "Retention dry run" in page
    assert "daily: keeps the newest 2" in page
    assert page.count('class="would-drop"') == 3
    assert f"<td>{stamps[0]}</td><td>dropped: older than the newest 2</td>" in page
    assert "On nas: 1 kept, nothing to drop." in page  # the weekly schedule


def test_the_remote_page_shows_each_points_chain_and_the_last_clean_pass(site, client):
    remote, _job, _vm, stamps = site
    run("backup_prune")
    page = client.get(remote.get_absolute_url()).content.decode()
    assert "Last clean pass" in page
    assert page.count('class="clean-report"') == 1
    assert "unused_merge" in page and "merged into" in page
    newest = RestorePoint.objects.get(timestamp=stamps[5])
    chain = newest.disks[0]["chain"]
    assert [link["file"] for link in chain] == [f"{stamps[2]}.vhd", f"{stamps[4]}.vhd",
                                               f"{stamps[5]}.vhd"]  # fmt: skip
    assert [link["differencing"] for link in chain] == [False, True, True]
    assert f"{stamps[2]}.vhd (full)</span> ← <span" in page
    vm_page = client.get(reverse("backups:vm_points", args=[newest.vm_uuid])).content.decode()
    assert f"chain: {stamps[2]}.vhd (full) ← {stamps[4]}.vhd ← {stamps[5]}.vhd" in vm_page


def test_the_remote_page_query_count_stays_flat(site, client, make_remote):
    remote = site[0]
    run("backup_prune")
    with CaptureQueriesContext(connection) as few:
        assert client.get(remote.get_absolute_url()).status_code == 200
    for number in range(5):
        CleanReport.objects.create(
            remote=remote, vm_uuid=f"vm-{number}", checked_at="2026-01-01T00:00Z", trigger="t"
        )
    with CaptureQueriesContext(connection) as many:
        assert client.get(remote.get_absolute_url()).status_code == 200
    assert len(many) == len(few)


def test_the_clean_buttons_need_the_permission(
    site, client_with, anonymous_client, django_capture_on_commit_callbacks
):
    remote = site[0]
    url = reverse("backups:remote_clean", args=[remote.pk])
    assert anonymous_client.post(url).status_code == 302
    assert client_with("backups.view_remote").post(url).status_code == 403
    page = client_with("backups.view_remote").get(remote.get_absolute_url()).content.decode()
    assert "Clean now" not in page
    allowed = client_with("backups.view_remote", "backups.change_remote")
    assert "Clean now" in allowed.get(remote.get_absolute_url()).content.decode()
    with django_capture_on_commit_callbacks() as callbacks:
        response = allowed.post(url, {"dry_run": "1"})
    assert response.status_code == 302
    assert len(callbacks) == 1  # the task is queued once the request's transaction commits


def test_a_schedule_keeps_long_term_buckets_and_bad_values_name_the_field(make_job):
    job = make_job()
    out = json.loads(
        run("schedule_add", job.name, "--cron", "0 1 * * *", "--keep-daily", "7",
            "--keep-monthly", "12", "--json")
    )  # fmt: skip
    assert (out["keep_daily"], out["keep_weekly"], out["keep_monthly"]) == (7, 0, 12)
    schedule = Schedule.objects.get(job=job)
    assert schedule.retention_text == (
        "the newest 7, and one per day for 7 days, per month for 12 months"
    )
    with pytest.raises(CommandError, match="--keep-weekly: Ensure this value is greater than"):
        run("schedule_add", job.name, "--cron", "0 2 * * *", "--keep-weekly", "-1")
    assert Schedule.objects.filter(job=job).count() == 1


def test_a_backup_that_left_merges_queues_a_merge_task_and_records_its_passes(
    site, monkeypatch, django_capture_on_commit_callbacks
):
    from backups import tasks
    from backups.engine.clean import Finding
    from backups.engine.maintenance import VmMaintenance
    from backups.models import BackupRun, VmBackup
    from backups.services import maintenance

    remote, job, vm, _stamps = site
    run_row = BackupRun.objects.create(job=job, trigger="page")
    vm_backup = VmBackup.objects.create(run=run_row, vm_uuid=vm.uuid)
    start = VmMaintenance(str(remote.uuid), remote.name, vm.uuid)
    start.findings.append(Finding("temporary", "x/.y.partial", "left", "deleted", done=True))
    end = VmMaintenance(str(remote.uuid), remote.name, vm.uuid, merges_done=2, merges_left=1)

    class Outcome:
        maintenance = {str(remote.uuid): [start, end]}

    sent = []
    monkeypatch.setattr(tasks.merge_vm, "delay", lambda *args: sent.append(args))
    with django_capture_on_commit_callbacks(execute=True):
        queued = maintenance.after_backup(vm_backup, Outcome(), {str(remote.uuid): remote})
    assert queued == ["nas"] and sent == [(remote.pk, vm.uuid)]
    report = CleanReport.objects.get(remote=remote, vm_uuid=vm.uuid)
    assert (report.merges_done, report.merges_left) == (2, 1)
    assert report.trigger == f"backup run {run_row.pk}"
    assert [f["kind"] for f in report.findings] == ["temporary"]


def test_snapshot_janitor_names_the_pool_at_fault(live_pool):
    live_pool("lab", vms=0)
    with pytest.raises(CommandError, match=r"--pool: no pool 'nope' \(pools: lab\)"):
        run("snapshot_janitor", "--pool", "nope")
    # A live pool is swept; this one cannot be reached (its address is made up): said so.
    with pytest.raises(CommandError, match="--pool: pool lab: "):
        run("snapshot_janitor", "--pool", "lab")


def test_the_janitor_leaves_alone_the_vms_a_live_backup_works_on(site):
    from datetime import timedelta

    from django.utils import timezone

    from backups.models import BackupRun, VmBackup
    from backups.services import snapshot_janitor

    _remote, job, _vm, _stamps = site
    run_row = BackupRun.objects.create(job=job, trigger="page")
    now = timezone.now()
    VmBackup.objects.create(run=run_row, vm_uuid="live", status="running", heartbeat=now)
    VmBackup.objects.create(
        run=run_row, vm_uuid="dead", status="running", heartbeat=now - timedelta(hours=1)
    )
    VmBackup.objects.create(run=run_row, vm_uuid="next", status="queued")
    VmBackup.objects.create(run=run_row, vm_uuid="done", status="success", heartbeat=now)
    assert snapshot_janitor.busy_pairs() == {(JOB_ID, "live"), (JOB_ID, "next")}
    jobs = snapshot_janitor.sweep_jobs()
    assert jobs[JOB_ID].snapshot_retention_by_schedule == {DAILY: 0, WEEKLY: 0}
