"""The Celery delivery policy per task (xoweb/delivery.py), with real workers and a real Redis:
a backup task comes back when its worker process or host dies, a short task does not, and the
backups queue's workers use a fresh process per task."""

from __future__ import annotations

import os
import re
import shlex
import signal
import time
from pathlib import Path

import pytest

from tests.fixtures.celery_tasks import backup_canary, canary
from tests.fixtures.processes import ROOT, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def journal_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def started_pids(path: Path) -> list[int]:
    return [int(line.split()[1]) for line in journal_lines(path) if line.startswith("start")]


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"the Procfile has no {name!r} process")


def test_each_task_has_the_policy_of_its_kind(settings):
    from xoweb.celery import app
    from xoweb.delivery import route

    app.loader.import_default_modules()
    backups = [name for name in app.tasks if name.startswith("backups.tasks.")]
    for name, declared in app.tasks.items():
        if name.startswith("celery."):
            continue
        is_backup = name in backups or name == "tests.backup_canary"
        assert bool(declared.acks_late) is is_backup, name
        assert route(name, (), {}, {}, task=declared) == (
            {"queue": "backups"} if is_backup else None
        )
        if is_backup:
            assert declared.reject_on_worker_lost, name
            assert declared.time_limit == settings.BACKUP_MAX_HOURS * 3600, name
            assert declared.soft_time_limit == declared.time_limit - 300, name
    assert not app.conf.task_acks_late
    assert app.conf.task_time_limit == settings.TASK_TIME_LIMIT == 300
    # A short visibility: a dead host's backup comes back in minutes, not days.
    visibility = app.conf.broker_transport_options["visibility_timeout"]
    assert visibility == settings.BROKER_VISIBILITY_SECONDS == 900


def test_a_backup_task_comes_back_when_its_worker_process_dies_and_a_short_task_does_not(
    start_celery_worker, tmp_path
):
    worker = start_celery_worker(concurrency=2)
    backup_journal, short_journal = tmp_path / "backup", tmp_path / "short"
    backup = backup_canary.delay(str(backup_journal), 60)
    canary.delay(str(short_journal), 60)
    wait_until(
        lambda: started_pids(backup_journal) and started_pids(short_journal),
        timeout=30,
        message="the canaries never started",
    )
    first_backup_pid, short_pid = started_pids(backup_journal)[0], started_pids(short_journal)[0]
    assert {first_backup_pid, short_pid} <= set(worker.children())

    os.kill(first_backup_pid, signal.SIGKILL)
    os.kill(short_pid, signal.SIGKILL)
    answer = backup.get(timeout=60)

    assert answer["pid"] != first_backup_pid
    assert len(started_pids(backup_journal)) == 2, journal_lines(backup_journal)
    time.sleep(2)  # time enough for a redelivery that should not happen
    assert started_pids(short_journal) == [short_pid], journal_lines(short_journal)


def test_the_backup_of_a_worker_host_that_died_comes_back_after_the_visibility_timeout(
    start_celery_worker, tmp_path
):
    """A dead host's worker cannot give its message back: the broker's visibility timeout
    does, and it is short (here 3 s, from XOWEB_BROKER_VISIBILITY_SECONDS)."""
    env = {"XOWEB_BROKER_VISIBILITY_SECONDS": "3", "XOWEB_TASK_TIME_LIMIT": "2"}
    doomed = start_celery_worker(**env)
    journal = tmp_path / "backup"
    result = backup_canary.delay(str(journal), 60)
    wait_until(lambda: started_pids(journal), timeout=30, message="the backup never started")
    os.killpg(doomed.pid, signal.SIGKILL)  # the whole worker at once, as when its host dies
    doomed.popen.wait(10)
    killed_at = time.monotonic()

    start_celery_worker(**env)
    answer = result.get(timeout=30)

    assert answer["redelivered"] or len(started_pids(journal)) == 2
    assert len(started_pids(journal)) == 2, journal_lines(journal)
    assert time.monotonic() - killed_at < 20


def test_the_procfiles_backups_worker_uses_a_fresh_process_per_task(start_celery_worker, tmp_path):
    command = procfile_command("backups")
    assert "--queues=backups" in command
    recycle = [option for option in command if re.fullmatch(r"--max-tasks-per-child=\d+", option)]
    assert recycle == ["--max-tasks-per-child=1"]
    assert "--queues=celery" in procfile_command("worker")

    start_celery_worker(queues="backups", options=tuple(recycle))
    pids = [
        backup_canary.delay(str(tmp_path / f"run{n}"), 0).get(timeout=30)["pid"] for n in range(2)
    ]
    assert pids[0] != pids[1], "two backups ran in the same worker process"
