"""A slow export on xapisim, watched by the real watcher: its XAPI task shows on the task page
with progress and a remaining time that approaches the truth."""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest
from django.urls import reverse

from tests.fixtures.processes import wait_until

pytestmark = pytest.mark.slow

DISK = 64 * 2**20
RATE = 4 * 2**20  # bytes/s: a 16 s export


def _export(url: str, finished: dict) -> None:
    with urllib.request.urlopen(url, timeout=60) as response:
        while response.read(1 << 20):
            pass
    finished["at"] = time.time()


def test_a_slow_export_shows_its_xapi_task_with_a_remaining_time_approaching_the_truth(
    xapisim, make_pool, start_watcher, client
):
    pool = make_pool(xapisim, name="lab")
    start_watcher()
    session = xapisim.session()
    vdi = next(
        ref
        for ref, record in session.xenapi.VDI.get_all_records().items()
        if not record["is_a_snapshot"] and record["type"] == "user"
    )
    xapisim.sim("set_rate_limit", str(RATE))
    finished: dict = {}
    url = f"{xapisim.url}export_raw_vdi?vdi={vdi}&format=raw&session_id={session._session}"
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
