"""Remotes, jobs and schedules through the commands a script uses (the same forms as the pages
and the admin): the exact JSON keys, and one line naming the option on bad input, with
nothing changed."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from backups.models import BackupJob, Remote, Schedule

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_remote_add_write_tests_the_folder_and_records_its_space(tmp_path) -> None:
    folder = tmp_path / "nas" / "backups"
    data = json.loads(run("remote_add", "nas", "--path", str(folder), "--json"))
    assert folder.is_dir(), "the folder is created when missing"
    assert list(folder.iterdir()) == [], "the write test leaves nothing behind"
    assert data["status"] == "ok" and data["free"] > 0 and data["total"] >= data["free"]
    assert data["name"] == "nas" and data["path"] == str(folder)
    listed = json.loads(run("remote_list", "--json"))
    assert [row["name"] for row in listed] == ["nas"]
    assert set(listed[0]) >= {"name", "path", "enabled", "status", "free", "total", "used"}


def test_remote_add_refuses_a_folder_it_cannot_create(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(CommandError) as refused:
        run("remote_add", "nas", "--path", str(blocker / "backups"))
    message = str(refused.value)
    assert message.startswith("remote not added: --path: ")
    assert "Not a directory" in message and "\n" not in message
    assert not Remote.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--path", "relative/dir"], "--path: 'relative/dir' is not absolute"),
        (["--path", "/srv/../etc"], "--path: the folder must not contain '..'"),
    ],
)
def test_remote_add_names_the_option_at_fault(args, message) -> None:
    with pytest.raises(CommandError, match=message):
        run("remote_add", "nas", *args)
    assert not Remote.objects.exists()


def test_remote_names_and_folders_are_unique(tmp_path, make_remote) -> None:
    make_remote("nas", path=str(tmp_path / "one"))
    with pytest.raises(CommandError, match="NAME: a remote named 'NAS' already exists"):
        run("remote_add", "NAS", "--path", str(tmp_path / "two"), "--no-test")
    with pytest.raises(CommandError, match="--path: remote 'nas' already uses"):
        run("remote_add", "other", "--path", str(tmp_path / "one"), "--no-test")


def test_job_add_with_vms_and_a_schedule_forcing_fulls(live_pool, make_remote) -> None:
    pool = live_pool(vms=2)
    vm_uuids = sorted(pool.vm_set.values_list("uuid", flat=True))
    make_remote("nas")
    make_remote("nas2")
    job = json.loads(
        run(
            "job_add", "nightly", "--mode", "delta", "--remote", "nas", "--remote", "nas2",
            *[arg for vm in vm_uuids for arg in ("--vm", vm)],
            "--full-interval", "7", "--max-chain", "20", "--concurrency", "3", "--json",
        )
    )  # fmt: skip
    assert job["vms"] == vm_uuids and job["remotes"] == ["nas", "nas2"]
    assert (job["full_interval"], job["max_chain_length"], job["concurrency"]) == (7, 20, 3)
    run("schedule_add", "nightly", "--cron", "0 1 * * 1-6", "--name", "nightly")
    sunday = json.loads(
        run(
            "schedule_add", "nightly", "--cron", "0 3 * * 0", "--name", "sunday",
            "--timezone", "Europe/Paris", "--force-full", "--retention", "4", "--json",
        )
    )  # fmt: skip
    assert sunday["force_full"] is True and sunday["description"].startswith("At 03:00")
    listed = json.loads(run("job_list", "--json"))
    assert [schedule["name"] for schedule in listed[0]["schedules"]] == ["nightly", "sunday"]
    assert listed[0]["uuid"] == str(BackupJob.objects.get().uuid)


def test_job_add_by_rule(live_pool, make_remote) -> None:
    live_pool("lab")
    make_remote("nas")
    job = json.loads(
        run(
            "job_add", "web", "--pool", "lab", "--tag", "web", "--tag", "db",
            "--power-state", "Running", "--remote", "nas", "--json",
        )
    )  # fmt: skip
    assert job["vms"] is None
    assert job["rule"] == {"pool": "lab", "tags": ["db", "web"], "power_state": "Running"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--remote", "nas"], "--vm/--pool: give --vm UUID or --pool NAME"),
        (["--vm", "x", "--pool", "lab", "--remote", "nas"], "give VMs or a pool, not both"),
        (["--vm", "nope", "--remote", "nas"], "--vm: no VM with uuid nope"),
        (["--pool", "lab"], "--remote: give at least one remote"),
        (["--pool", "lab", "--remote", "tape"], "--remote: no remote 'tape'"),
        (["--pool", "nowhere", "--remote", "nas"], "--pool: no pool 'nowhere'"),
        (["--pool", "lab", "--remote", "nas", "--mode", "tar"], "--mode: Select a valid"),
        (["--pool", "lab", "--remote", "nas", "--concurrency", "0"], "--concurrency: "),
        (["--pool", "lab", "--remote", "nas", "--full-interval", "-1"], "--full-interval: "),
        (["--pool", "lab", "--remote", "nas", "--power-state", "Asleep"], "--power-state: "),
    ],
)
def test_job_add_names_the_option_at_fault(args, message, live_pool, make_remote) -> None:
    live_pool("lab")
    make_remote("nas")
    with pytest.raises(CommandError, match=message) as refused:
        run("job_add", "nightly", *args)
    assert "\n" not in str(refused.value)
    assert not BackupJob.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "0 1 * *"], "--cron: '0 1 \\* \\*' has 4 fields"),
        (["--cron", "0 25 * * *"], "--cron: '0 25 \\* \\* \\*' is not a valid cron"),
        (["--cron", "0 1 * * *", "--timezone", "Europe/Nowhere"], "--timezone: 'Europe/Nowhere'"),
        (["--cron", "0 1 * * *", "--retention", "0"], "--retention: "),
    ],
)
def test_schedule_add_names_the_option_at_fault(args, message, make_job) -> None:
    make_job("nightly")
    with pytest.raises(CommandError, match=message):
        run("schedule_add", "nightly", *args)
    assert not Schedule.objects.exists()


def test_schedule_names_are_unique_per_job(make_job) -> None:
    make_job("nightly")
    run("schedule_add", "nightly", "--cron", "0 1 * * *", "--name", "daily")
    with pytest.raises(CommandError, match="--name: job nightly already has a schedule 'Daily'"):
        run("schedule_add", "nightly", "--cron", "0 2 * * *", "--name", "Daily")
    with pytest.raises(CommandError, match="JOB: no job 'weekly'"):
        run("schedule_add", "weekly", "--cron", "0 2 * * *")


def test_a_failed_command_prints_one_line_and_exits_non_zero(run_manage) -> None:
    result = run_manage("job_run", "missing-job", "--wait", "--json")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "CommandError: JOB: no job 'missing-job' (see manage.py job_list)"
    ]
