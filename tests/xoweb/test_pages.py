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


def test_navigation_works_in_a_real_browser(live_server, browser_page):
    browser_page.goto(live_server.url + "/")
    assert browser_page.locator("h1").inner_text() == "Dashboard"

    browser_page.get_by_role("link", name="Tasks").click()
    browser_page.wait_for_url("**/tasks/")

    current = browser_page.locator('nav a[aria-current="page"]').inner_text()
    assert current == "Tasks"
    assert "htmx" in browser_page.evaluate("typeof htmx === 'object' ? 'htmx' : 'missing'")
    save_screenshot(browser_page, "navigation")
