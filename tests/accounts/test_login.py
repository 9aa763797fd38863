"""xoweb's own login and logout pages, and the throttle on wrong passwords (django-axes)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.fixtures.browser import save_screenshot

pytestmark = pytest.mark.django_db

PASSWORD = "a long passphrase for tests"


@pytest.fixture
def alice(make_user):
    return make_user("alice", groups=["viewers"], password=PASSWORD)


def log_in(client: Client, username: str, password: str):
    return client.post(reverse("accounts:login"), {"username": username, "password": password})


def test_the_login_page_is_xowebs_and_logs_in_then_out(anonymous_client, alice):
    page = anonymous_client.get("/pools/", follow=True)
    html = page.content.decode()
    assert page.redirect_chain == [("/login/?next=/pools/", 302)]
    assert "<h1>Log in to xoweb</h1>" in html and 'class="topnav"' in html
    assert ">Pools</a>" not in html, "the navigation is for people who are logged in"

    response = anonymous_client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "next": "/pools/"}, follow=True
    )
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == "/pools/"
    assert 'title="Logged in as alice">alice</span>' in html
    assert 'action="/logout/"' in html and "Log out</button>" in html

    assert anonymous_client.get("/logout/").status_code == 405, "a link must not log out"
    out = anonymous_client.post("/logout/", follow=True)
    assert out.redirect_chain[-1][0] == "/login/"
    assert "You are logged out." in out.content.decode()
    assert anonymous_client.get("/pools/").status_code == 302


def test_a_wrong_password_says_so_without_saying_which_part(anonymous_client, alice):
    response = log_in(anonymous_client, "alice", "not it")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "javascript:alert(1)", "//evil.example"]
)
def test_after_login_only_a_page_of_this_site_is_followed(anonymous_client, alice, target):
    response = anonymous_client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "next": target}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_the_throttle_locks_a_user_from_an_address_after_the_limit_and_says_so(
    anonymous_client, alice, settings
):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert log_in(anonymous_client, "alice", "wrong").status_code == 200
    locked = log_in(anonymous_client, "alice", "wrong")
    assert locked.status_code == 429
    message = (
        "Too many failed logins: logins as &#x27;alice&#x27; from this address are refused for "
        "15 minutes."
    )
    assert message in locked.content.decode()
    assert "<h1>Log in to xoweb</h1>" in locked.content.decode()

    # Even the right password is refused now, with the same message.
    right = log_in(anonymous_client, "alice", PASSWORD)
    assert right.status_code == 429 and message in right.content.decode()
    assert anonymous_client.get("/pools/").status_code == 302, "not logged in"

    # Per user and address: another user, or alice from elsewhere, is not locked out.
    assert log_in(Client(), "bob", "wrong").status_code == 200
    elsewhere = log_in(Client(REMOTE_ADDR="10.9.8.7"), "alice", PASSWORD)
    assert elsewhere.status_code == 302

    # The attempts are kept for the admin to see, without the passwords that were tried.
    from axes.models import AccessAttempt

    attempt = AccessAttempt.objects.get(username="alice", ip_address="127.0.0.1")
    assert attempt.failures_since_start == limit + 1
    assert "wrong" not in attempt.post_data and PASSWORD not in attempt.post_data


def test_the_admin_login_is_throttled_too_and_says_so_in_its_own_look(anonymous_client, make_user):
    make_user("root", superuser=True, password=PASSWORD)
    url = reverse("admin:login")
    for _ in range(5):
        response = anonymous_client.post(url, {"username": "root", "password": "wrong"})
    assert response.status_code == 429
    html = response.content.decode()
    assert "Too many failed logins: logins as &#x27;root&#x27;" in html
    assert "Django administration" in html  # the admin's own page
    again = anonymous_client.post(url, {"username": "root", "password": PASSWORD})
    assert again.status_code == 429


def test_behind_the_https_proxy_the_throttle_counts_the_forwarded_address(rf, settings):
    from accounts.throttle import client_address

    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.10")
    assert client_address(request) == "127.0.0.1"
    settings.HTTPS = True
    assert client_address(request) == "192.0.2.10", "the proxy's own entry, not the client's"
    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="garbage")
    assert client_address(request) == "127.0.0.1"


@pytest.mark.slow
def test_log_in_see_the_user_name_and_log_out_in_a_real_browser(
    live_server, browser_page, make_user
):
    make_user("carol", groups=["operators"], password=PASSWORD)
    page = browser_page
    page.goto(f"{live_server.url}/tasks/")
    page.wait_for_url("**/login/?next=/tasks/")
    save_screenshot(page, "login")
    page.get_by_label("User name").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/tasks/")
    assert page.locator("nav.topnav .user").inner_text() == "carol"
    save_screenshot(page, "logged-in")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    assert "You are logged out." in page.locator(".messages").inner_text()
    assert page.locator("nav.topnav .user").count() == 0
    page.goto(f"{live_server.url}/")
    page.wait_for_url("**/login/?next=/")


@pytest.mark.slow
def test_a_page_that_updates_itself_goes_to_the_login_page_when_the_session_ends(
    live_server, logged_in_page
):
    """The task list polls with htmx: once logged out elsewhere, its poll gets 401 with
    HX-Redirect, and the whole page goes to the login page, to come back after."""
    from django.contrib.sessions.models import Session

    logged_in_page.goto(f"{live_server.url}/tasks/")
    assert logged_in_page.locator("h1").inner_text() == "Tasks"
    Session.objects.all().delete()
    logged_in_page.wait_for_url("**/login/?next=/tasks/", timeout=10_000)


def test_an_unknown_host_name_is_refused_with_the_reason(anonymous_client):
    response = anonymous_client.get("/login/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert "this host name is not one xoweb answers to" in response.content.decode()
