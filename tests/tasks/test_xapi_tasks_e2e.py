"""A slow export on xapisim, watched by the real watcher: its XAPI task shows on the task page
with progress and a remaining time that approaches the truth. A cancel on the page reaches a
cancellable XAPI task through a worker (an export is not one: XAPI never stops it,
docs/xapi.md §8.7)."""

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
        exports = [task for task in data["xapi_tasks"] if task["name"] == "Exporting raw VDI"]
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
    """A slow `Async.VM.snapshot` polls for cancellation, as XAPI's operations do: the page's
    cancel becomes `task.cancel` in a worker, and the task ends cancelled with no snapshot."""
    make_pool(xapisim, name="lab")
    start_watcher()
    session = xapisim.session()
    vm = next(
        ref
        for ref, record in session.xenapi.VM.get_all_records().items()
        if not (record["is_a_template"] or record["is_control_domain"])
    )
    xapisim.sim("set_async_delay", "60")  # it will not end by itself
    session.xenapi.Async.VM.snapshot(vm, "slow")

    def snapshot_task() -> dict | None:
        data = client.get(reverse("tasks:task_list_json")).json()
        found = [task for task in data["xapi_tasks"] if task["name"] == "Async.VM.snapshot"]
        return found[0] if found and found[0]["cancellable"] else None

    task = wait_until(snapshot_task, timeout=20, message="the snapshot's task never showed")
    response = client.post(reverse("tasks:xapi_task_cancel", args=[task["id"]]), follow=True)
    assert "Cancel requested for XAPI task Async.VM.snapshot on lab." in response.content.decode()

    def cancelled() -> bool:
        data = client.get(reverse("tasks:task_list_json")).json()
        return any(t["id"] == task["id"] and t["status"] == "cancelled" for t in data["xapi_tasks"])

    wait_until(cancelled, timeout=20, message="the XAPI task was never cancelled")
    assert session.xenapi.VM.get_snapshots(vm) == []
