"""The base layout: every page has the navigation bar, in a real browser too."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.fixtures.browser import save_screenshot

pytestmark = pytest.mark.django_db

NAVIGATION = ["Dashboard", "Pools", "VMs", "Backups", "Tasks", "Admin", "Flower"]


@pytest.mark.parametrize(
    "url_name",
    ["dashboard", "pools:pool_list", "pools:vm_list", "backups:overview", "tasks:task_list"],
)
def test_every_page_has_the_navigation_bar(client, url_name):
    response = client.get(reverse(url_name))

    assert response.status_code == 200
    nav = response.content.decode().split('<nav class="topnav"')[1].split("</nav>")[0]
    for label in NAVIGATION:
        assert f">{label}</a>" in nav, f"{label} missing from the navigation of {url_name}"
    assert 'aria-current="page"' in nav


def test_navigation_works_in_a_real_browser(live_server, logged_in_page):
    logged_in_page.goto(live_server.url + "/")
    assert logged_in_page.locator("h1").inner_text() == "Dashboard"

    logged_in_page.locator("nav.topnav").get_by_role("link", name="Tasks", exact=True).click()
    logged_in_page.wait_for_url("**/tasks/")

    current = logged_in_page.locator('nav a[aria-current="page"]').inner_text()
    assert current == "Tasks"
    assert "htmx" in logged_in_page.evaluate("typeof htmx === 'object' ? 'htmx' : 'missing'")
    save_screenshot(logged_in_page, "navigation")


def test_the_dashboard_counts_running_and_failed_work_and_greys_a_lost_pool(client, pool_row):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks.choices import TaskStatus
    from tasks.models import Task

    pool_row("lab", status="connected")
    pool_row("lost", status="stale")
    Task.objects.create(name="backup run", kind="run", status=TaskStatus.RUNNING)
    Task.objects.create(name="old run", kind="run", status=TaskStatus.FAILURE)

    with CaptureQueriesContext(connection) as few:
        response = client.get(reverse("dashboard"))
    html = response.content.decode()

    assert "<strong>1</strong> running task<" in html
    assert "<strong>1</strong> failed in the last 24 h" in html
    # The watcher is not running in this test: no pool may be shown as live.
    assert html.count('<tr class="stale">') == 2
    assert "watcher not running" in html

    for index in range(30):
        pool_row(f"more-{index}")
        Task.objects.create(name=f"run {index}", kind="run", status=TaskStatus.RUNNING)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("dashboard"))
    assert len(many) == len(few)
