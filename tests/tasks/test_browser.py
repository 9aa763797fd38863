"""The task page in a real browser: bars move and the remaining time changes without a reload."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from tasks.models import Task
from tasks.reporter import task
from tests.fixtures.browser import save_screenshot
from tests.fixtures.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOTAL = 600 * 2**20  # 600 MiB at 10 MiB/s: a minute, longer than the test


def _run_in_a_thread(stop: threading.Event, ready: list) -> None:
    """A plain process (here a thread) reporting a run with one transfer, as real code does."""
    try:
        with (
            task("browser run", kind="run") as run,
            run.subtask("transfer xvda", kind="transfer", total=TOTAL) as transfer,
        ):
            ready.extend([run.id, transfer.id])
            while not stop.is_set() and transfer.done < TOTAL:
                time.sleep(0.05)
                transfer.advance(TOTAL / 60 * 0.05)
    finally:
        connection.close()


def test_the_page_shows_bars_moving_and_the_remaining_time_changing(live_server, logged_in_page):
    stop, ready = threading.Event(), []
    worker = threading.Thread(target=_run_in_a_thread, args=(stop, ready), daemon=True)
    worker.start()
    try:
        wait_until(lambda: len(ready) == 2, timeout=10, message="the run never started")
        run_id, transfer_id = ready
        page = logged_in_page
        page.goto(f"{live_server.url}/tasks/")
        page.evaluate("window.notReloaded = true")
        bar = page.locator(f'tr[data-id="{transfer_id}"] progress')
        remaining = page.locator(f'tr[data-id="{transfer_id}"] td.remaining')
        # The estimate appears once there is enough signal (a few seconds of progress).
        wait_until(
            lambda: remaining.inner_text().strip() not in ("", "estimating…"),
            timeout=15,
            message="no remaining time was ever shown",
        )
        first_value, first_remaining = bar.get_attribute("value"), remaining.inner_text()
        wait_until(
            lambda: (
                bar.get_attribute("value") != first_value
                and remaining.inner_text() != first_remaining
            ),
            timeout=8,
            message="the bar or the remaining time did not change",
        )
        assert float(bar.get_attribute("value")) > float(first_value)
        assert page.evaluate("window.notReloaded") is True
        assert "min" in remaining.inner_text() or " s" in remaining.inner_text()
        run_row = page.locator(f'tr[data-id="{run_id}"]')
        assert "running" in run_row.locator("td").nth(1).inner_text()
        save_screenshot(page, "tasks-page-live")

        # Folding the run hides its transfer, and stays folded across the next refreshes.
        run_row.locator("button.toggle").click()
        transfer_row = page.locator(f'tr[data-id="{transfer_id}"]')
        assert transfer_row.is_hidden()
        clock = page.locator(".task-clock time").inner_text()
        wait_until(
            lambda: page.locator(".task-clock time").inner_text() != clock,
            timeout=6,
            message="the page stopped refreshing",
        )
        assert transfer_row.is_hidden()
        assert page.evaluate("window.notReloaded") is True

        # The run's detail page: its facts, its sub-tasks and its log, refreshed in place.
        run_row.locator("td.name a").click()
        page.wait_for_url(f"**/tasks/{run_id}/")
        elapsed = page.locator(".task-facts dd.elapsed")
        first_elapsed = elapsed.inner_text()
        wait_until(
            lambda: elapsed.inner_text() != first_elapsed,
            timeout=6,
            message="the detail page did not refresh",
        )
        # Folded on the list, the run's sub-tasks are still shown on its own page.
        assert page.locator(f'tr[data-id="{transfer_id}"] progress').is_visible()
        save_screenshot(page, "tasks-detail-live")
    finally:
        stop.set()
        worker.join(10)
    assert Task.objects.get(pk=ready[0]).status == "success"
