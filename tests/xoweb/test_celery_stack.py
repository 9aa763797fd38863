"""The Celery stack is real: a Redis server, worker processes and beat, wired by settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.fixtures.processes import wait_until
from xoweb.diagnostics import ping

pytestmark = pytest.mark.django_db(transaction=True)


def journal_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_worker_process_runs_a_task_and_its_result_comes_back(celery_worker):
    answer = ping.delay().get(timeout=30)

    assert answer["pid"] in celery_worker.children(), "the task ran outside the worker's pool"
    assert answer["pid"] != os.getpid()


def test_beat_fires_periodic_tasks_created_through_the_orm(
    celery_worker, start_celery_beat, tmp_path
):
    """One task exists when beat starts; a second is created while it runs and is picked up.

    The first also proves beat is past its start-up: django-celery-beat takes its first look at
    the change marker as the baseline, so a task saved in that window would only be seen at the
    next change.
    """
    every_second, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )

    def schedule_canary(name: str) -> Path:
        journal = tmp_path / name
        PeriodicTask.objects.create(
            name=name, task="tests.canary", interval=every_second, args=f'["{journal}", 0]'
        )
        return journal

    def ran_in_the_worker(journal: Path) -> bool:
        lines = journal_lines(journal)
        if "end" not in "".join(lines):
            return False
        assert int(lines[0].split()[1]) in celery_worker.children()
        return True

    at_start = schedule_canary("existing at start")
    start_celery_beat()
    wait_until(
        lambda: ran_in_the_worker(at_start),
        timeout=30,
        message="beat never fired the periodic task it started with",
    )

    while_running = schedule_canary("created while beat runs")
    wait_until(
        lambda: ran_in_the_worker(while_running),
        timeout=30,
        message="beat never picked up the periodic task created while it ran",
    )


def test_check_workers_command_reports_the_worker_that_answered(celery_worker, run_manage):
    done = run_manage("check_workers", "--timeout", "30")

    assert done.returncode == 0, done.stderr
    assert "answered" in done.stdout
    pid = int(done.stdout.split("(pid ")[1].split(")")[0])
    assert pid in celery_worker.children()


def test_check_workers_command_says_when_no_worker_answers(redis_server, run_manage):
    done = run_manage("check_workers", "--timeout", "1")

    assert done.returncode == 1
    assert "no worker answered within 1 s" in done.stderr
