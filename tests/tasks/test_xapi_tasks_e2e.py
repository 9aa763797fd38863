"""A slow export on xapisim, watched by the real watcher: its XAPI task shows on the task page
with progress and a remaining time that approaches the truth."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from django.urls import reverse

from tests.fixtures.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DISK = 64 * 2**20
RATE = 6 * 2**20  # bytes/s: an 11 s export


def _user_disk_export_url(xapisim) -> str:
    """The URL of a raw export of one of the simulator's user disks (not a snapshot)."""
    session = xapisim.session()
    vdi = next(
        ref
        for ref, record in session.xenapi.VDI.get_all_records().items()
        if not record["is_a_snapshot"] and record["type"] == "user"
    )
    return f"{xapisim.url}export_raw_vdi?vdi={vdi}&format=raw&session_id={session._session}"


def _export(url: str, finished: dict) -> None:
    finished["bytes"] = 0
    with urllib.request.urlopen(url, timeout=90) as response:
        while chunk := response.read(1 << 20):
            finished["bytes"] += len(chunk)
    finished["at"] = time.time()


def test_a_slow_export_shows_its_xapi_task_with_a_remaining_time_approaching_the_truth(
    xapisim, make_pool, start_watcher, client
):
    pool = make_pool(xapisim, name="lab")
    start_watcher()
    url = _user_disk_export_url(xapisim)
    xapisim.sim("set_rate_limit", str(RATE))
    finished: dict = {}
    exporter = threading.Thread(target=_export, args=(url, finished), daemon=True)
    exporter.start()
    samples = []  # (wall time, the task as the JSON endpoint shows it)

    def poll() -> bool:
        data = client.get(reverse("tasks:task_list_json")).json()
        exports = [task for task in data["xapi_tasks"] if task["name"] == "VDI export"]
        if exports:
            samples.append((time.time(), exports[0]))
        return "at" in finished

    wait_until(poll, timeout=60, message="the export never finished")
    exporter.join(5)
    running = [(at, task) for at, task in samples if task["status"] == "running"]
    assert running, "the export's XAPI task never showed as running"
    assert {task["source"] for _, task in running} == {"lab"}
    progresses = [task["progress"] for _, task in running]
    assert progresses == sorted(progresses) and progresses[-1] > 0.5
    estimated = [(at, task) for at, task in running if task["remaining_s"] is not None]
    assert len(estimated) >= 5, f"too few estimates: {[t['remaining_s'] for _, t in running]}"
    errors = []
    for at, task in estimated:
        truth = finished["at"] - at
        if task["progress"] >= 0.4 and truth > 2:
            errors.append((task["remaining_s"] - truth, truth))
    assert errors
    assert all(abs(error) <= max(2.5, 0.25 * truth) for error, truth in errors), errors
    wait_until(
        lambda: (
            client.get(reverse("tasks:task_list_json")).json()["xapi_tasks"][0]["status"]
            == "success"
        ),
        timeout=10,
        message="the finished export never showed success",
    )
    assert pool.pk


def test_cancel_on_the_page_cancels_the_xapi_task_through_a_worker(
    xapisim, make_pool, start_watcher, celery_worker, client
):
    make_pool(xapisim, name="lab")
    start_watcher()
    url = _user_disk_export_url(xapisim)
    xapisim.sim("set_rate_limit", str(2**20))  # a 64 s export: it will not end by itself
    finished: dict = {}

    def export() -> None:
        try:
            _export(url, finished)
        except OSError as error:  # the simulator cuts the stream when the task is cancelled
            finished["error"] = str(error)

    threading.Thread(target=export, daemon=True).start()

    def export_task() -> dict | None:
        data = client.get(reverse("tasks:task_list_json")).json()
        found = [task for task in data["xapi_tasks"] if task["name"] == "VDI export"]
        return found[0] if found and found[0]["cancellable"] else None

    task = wait_until(export_task, timeout=20, message="the export's task never showed")
    response = client.post(reverse("tasks:xapi_task_cancel", args=[task["id"]]), follow=True)
    assert "Cancel requested for XAPI task VDI export on lab." in response.content.decode()

    def cancelled() -> bool:
        data = client.get(reverse("tasks:task_list_json")).json()
        return any(t["id"] == task["id"] and t["status"] == "cancelled" for t in data["xapi_tasks"])

    wait_until(cancelled, timeout=20, message="the XAPI task was never cancelled")
    # The stream stops well short of the disk: the export did not run to its end.
    wait_until(
        lambda: "at" in finished or "error" in finished,
        timeout=10,
        message="the export never stopped",
    )
    assert finished["bytes"] < DISK / 2
