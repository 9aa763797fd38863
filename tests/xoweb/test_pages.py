"""The base layout: every page has the navigation bar, in a real browser too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from tests.fixtures.browser import save_screenshot

pytestmark = pytest.mark.django_db

NAVIGATION = ["Dashboard", "Pools", "VMs", "Backups", "Tasks", "Admin", "Flower"]


@pytest.mark.parametrize(
    "url_name",
    ["dashboard", "pools:pool_list", "pools:vm_list", "backups:overview", "tasks:task_list"],
)
def test_every_page_has_the_navigation_bar(client, django_user_model, url_name):
    # Pages need a login (the backups pages already do; every page will).
    client.force_login(django_user_model.objects.create_superuser("admin", password="x"))
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
    # The watcher is not running in this test: no pool may be shown as live; the lost one is
    # stale with its loss time, the other unknown.
    assert 'data-liveness="live"' not in html
    assert html.count('<tr class="stale"') == 1 and html.count('<tr class="unknown"') == 1
    assert "watcher not running" in html

    for index in range(30):
        pool_row(f"more-{index}")
        Task.objects.create(name=f"run {index}", kind="run", status=TaskStatus.RUNNING)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("dashboard"))
    assert len(many) == len(few)


def test_every_page_has_a_favicon_and_the_browsers_default_address_finds_it(client):
    html = client.get(reverse("dashboard")).content.decode()
    (icon,) = re.findall(r'<link rel="icon" href="([^"]+)"', html)
    redirect = client.get("/favicon.ico")
    assert redirect.status_code == 301 and redirect["Location"] == icon
    # The page's address is the static file's (served by whitenoise after collectstatic).
    from django.conf import settings
    from django.contrib.staticfiles import finders

    found = finders.find(icon.removeprefix(settings.STATIC_URL))
    assert found and "<svg" in Path(found).read_text()


def test_the_dashboard_refreshes_itself_and_counts_running_xapi_tasks(
    client, pool_row, make_xapi_task
):
    lab = pool_row("lab")
    make_xapi_task(lab, "Export of VM web")
    make_xapi_task(lab, "Import", status="success")
    make_xapi_task(pool_row("lost", status="stale"), "Export of a lost pool's VM")

    page = client.get(reverse("dashboard")).content.decode()
    assert 'hx-get="/"' in page and 'hx-trigger="every 2s"' in page
    # Only tasks that XAPI still runs on a live pool: a lost pool's task is not known to run.
    assert "<strong>1</strong> running XAPI task<" in page

    fragment = client.get(reverse("dashboard"), HTTP_HX_REQUEST="true").content.decode()
    assert "<strong>1</strong> running XAPI task<" in fragment
    assert '<nav class="topnav"' not in fragment and "hx-trigger" not in fragment
