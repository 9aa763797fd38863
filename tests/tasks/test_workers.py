"""The reporter in a real Celery worker: rows the page and JSON show, and a SIGKILLed worker."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.test import override_settings
from django.urls import reverse

from tasks.choices import TaskStatus
from tasks.models import Task
from tests.fixtures.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _json_task(client, pk: int) -> dict:
    return client.get(reverse("tasks:task_detail_json", args=[pk])).json()


def test_the_reporter_in_a_worker_updates_what_the_page_and_json_show(celery_worker, client):
    from tests.fixtures.celery_tasks import demo_transfer

    result = demo_transfer.delay("worker transfer", 50_000_000, 6.0, steps=120)
    row = wait_until(
        lambda: Task.objects.filter(name="worker transfer").first(),
        timeout=20,
        message="the worker never created its task",
    )
    assert row.host.split(":")[1] != str(os.getpid())  # written by another process
    seen = []

    def progress_moved() -> bool:
        data = _json_task(client, row.pk)
        if data["status"] == "running" and data["progress"]:
            seen.append(data)
        moved = len({entry["progress"] for entry in seen}) >= 3
        return moved and seen[-1]["remaining_s"] is not None

    wait_until(progress_moved, timeout=20, message="progress never moved to an estimate")
    # Nothing is estimated before enough signal: the first samples had no remaining time.
    assert seen[0]["remaining_s"] is None
    assert [entry["progress"] for entry in seen] == sorted(entry["progress"] for entry in seen)
    late = seen[-1]
    assert late["remaining_s"] is not None and late["rate_bps"] is not None
    # About 8.3 MB/s: the estimate is in the right range, not off by a factor.
    assert 3e6 < late["rate_bps"] < 20e6
    html = client.get(reverse("tasks:task_list")).content.decode()
    assert "worker transfer" in html and "<progress" in html
    assert result.get(timeout=30) == row.pk
    final = _json_task(client, row.pk)
    assert final["status"] == "success" and final["progress"] == 1.0
    assert final["log"][-1]["message"] == "50000000 units transferred in 6.0 s"


@override_settings(TASK_INTERRUPTED_AFTER_SECONDS=3)
def test_a_worker_killed_with_sigkill_leaves_its_task_interrupted(start_celery_worker, client):
    from tasks.tasks import mark_interrupted
    from tests.fixtures.celery_tasks import demo_transfer

    worker = start_celery_worker(
        concurrency=2, TASK_HEARTBEAT_SECONDS="1", TASK_INTERRUPTED_AFTER_SECONDS="3"
    )
    # Two blocks of 8 s: between them the work blocks and only the heartbeat thread beats.
    demo_transfer.delay("doomed transfer", 1000, 16.0, steps=2)
    row = wait_until(
        lambda: Task.objects.filter(name="doomed transfer").first(),
        timeout=20,
        message="the worker never created its task",
    )
    time.sleep(4.5)  # longer than the timeout, with no progress written
    alive = _json_task(client, row.pk)
    assert alive["status"] == "running", "the heartbeat thread kept a blocked task alive"
    pid = int(row.host.split(":")[1])
    assert pid in worker.children()
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    def shown_interrupted() -> bool:
        return _json_task(client, row.pk)["status"] == TaskStatus.INTERRUPTED

    wait_until(shown_interrupted, timeout=10, message="the killed task never showed interrupted")
    assert time.monotonic() - killed_at >= 1.0  # not before its heartbeat could be missed
    # The periodic sweep, run by the worker as beat would, writes it down.
    swept = mark_interrupted.delay().get(timeout=30)
    assert swept >= 1
    row.refresh_from_db()
    assert row.status == TaskStatus.INTERRUPTED and row.ended is not None
    assert row.error == ("interrupted: its process stopped sending heartbeats (none for 3 s)")
