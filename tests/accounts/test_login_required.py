"""Every URL of every urls.py needs a login, except the explicit exemptions.

The URLs are found by walking the resolver (tests/accounts/urlwalk.py), so a page added later
by any app is covered without touching this file.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from tests.accounts.urlwalk import every_route

pytestmark = pytest.mark.django_db

#: The only views an anonymous person may use (static files are served before the URLs): the
#: login pages, the health check, and the redirect of /favicon.ico to the static icon.
EXEMPT = {"accounts:login", "admin:login", "health", "favicon"}

ROUTES = every_route()


def test_the_walk_finds_the_pages_of_every_app():
    names = {route.name for route in ROUTES}
    assert {"dashboard", "pools:pool_list", "tasks:task_list_json", "backups:overview"} <= names
    assert any(route.is_admin for route in ROUTES)
    assert names >= EXEMPT, "an exemption names a URL that no longer exists"


@pytest.mark.parametrize("method", ["get", "post"])
def test_an_anonymous_request_is_sent_to_the_login_page_or_gets_401(anonymous_client, method):
    wrong = []
    for route in ROUTES:
        if route.name in EXEMPT:
            continue
        response = getattr(anonymous_client, method)(route.path)
        if getattr(route.callback, "json_endpoint", False):
            if response.status_code != 401 or "log in first" not in response.json()["error"]:
                wrong.append(f"{route.name} {route.path}: {response.status_code}")
        elif response.status_code != 302 or response["Location"] != (
            f"/login/?next={quote(route.path)}"
        ):
            wrong.append(f"{route.name} {route.path}: {response.status_code}")
    assert wrong == [], "answered an anonymous request without a login:\n" + "\n".join(wrong)


def test_an_anonymous_htmx_or_json_request_gets_401_not_a_redirect(anonymous_client):
    wrong = []
    for route in ROUTES:
        if route.name in EXEMPT:
            continue
        fragment = anonymous_client.get(
            route.path, HTTP_HX_REQUEST="true", HTTP_HX_CURRENT_URL="http://testserver/tasks/"
        )
        asked_json = anonymous_client.get(route.path, HTTP_ACCEPT="application/json")
        if fragment.status_code != 401 or asked_json.status_code != 401:
            wrong.append(f"{route.name}: {fragment.status_code} / {asked_json.status_code}")
        elif not getattr(route.callback, "json_endpoint", False):
            # htmx is told to take the whole page to the login page, back to where it was.
            assert fragment["HX-Redirect"] == "/login/?next=/tasks/", route.name
            assert "log in first" in json.loads(asked_json.content)["error"]
    assert wrong == [], "\n".join(wrong)


def test_the_exemptions_answer_without_a_login(anonymous_client, settings):
    assert anonymous_client.get("/login/").status_code == 200
    assert anonymous_client.get("/admin/login/").status_code == 200
    health = anonymous_client.get("/health/")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert anonymous_client.get("/favicon.ico")["Location"] == "/static/xoweb/favicon.svg"
    # Static files are served by WhiteNoise before any URL is resolved (or a login checked).
    settings.WHITENOISE_USE_FINDERS = True
    from django.test import Client

    css = Client().get("/static/xoweb/xoweb.css")
    assert css.status_code == 200 and b".topnav" in b"".join(css.streaming_content)


def test_every_view_of_xoweb_declares_its_permissions_or_is_public():
    """A view that forgot requires() fails here, whichever app adds it."""
    undeclared = [
        route.name
        for route in ROUTES
        if not route.is_admin
        and route.name not in EXEMPT
        and not hasattr(route.callback, "required_permissions")
    ]
    assert undeclared == [], f"views without accounts.access.requires(): {undeclared}"
    public = [
        route.name
        for route in ROUTES
        if not getattr(route.callback, "login_required", True) and not route.is_admin
    ]
    assert sorted(public) == sorted(EXEMPT - {"admin:login"})
