"""A pool's password typed in the admin (or the pool page) never comes back: not in the form
shown again with its errors, not in the error page of a crash, not in the error report mailed to
the admins, not in the web process's log."""

from __future__ import annotations

import logging

import pytest
from django.core import mail
from django.test import Client

from pools.models import Pool

pytestmark = pytest.mark.django_db

#: Where a person types a pool's password.
FORMS = pytest.mark.parametrize("url", ["/admin/pools/pool/add/", "/pools/add/"])

SECRET = "Pw-admin-7f3Kq-secret"


def add_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "lab",
        "master_url": "http://127.0.0.1:1",
        "username": "root",
        "password": SECRET,
        "tls_mode": "pin",
        "tls_fingerprint": "",
        "enabled": "on",
    }
    data.update(overrides)
    return data


@pytest.fixture
def admin_browser(admin_user) -> Client:
    """An admin's client that gets the 500 page instead of the exception, like a browser."""
    browser = Client(raise_request_exception=False)
    browser.force_login(admin_user)
    return browser


@FORMS
def test_the_form_shown_again_with_its_errors_has_an_empty_password(admin_browser, url):
    page = admin_browser.post(url, add_form(tls_fingerprint="12:34"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "64 hexadecimal digits" in html  # the form came back, with its error
    assert 'name="password"' in html
    assert SECRET not in html
    assert not Pool.objects.exists()


@pytest.fixture
def crash_on_save(monkeypatch):
    def crash(pool, *, adding):
        raise RuntimeError("the database is full")

    monkeypatch.setattr("pools.admin.save_settings", crash)
    monkeypatch.setattr("pools.forms.save_settings", crash)


@FORMS
def test_the_debug_error_page_hides_the_password(admin_browser, crash_on_save, settings, url):
    settings.DEBUG = True
    page = admin_browser.post(url, add_form())
    html = page.content.decode()
    assert page.status_code == 500
    assert "the database is full" in html  # Django's technical page, with the request's POST
    assert "password" in html and "********************" in html
    assert SECRET not in html


@FORMS
def test_the_mailed_report_and_the_log_hide_the_password(
    admin_browser, crash_on_save, settings, caplog, url
):
    settings.DEBUG = False
    settings.ADMINS = [("Admin", "admin@example.net")]
    with caplog.at_level(logging.INFO):
        page = admin_browser.post(url, add_form())
    assert page.status_code == 500
    assert SECRET not in page.content.decode()

    (report,) = mail.outbox
    assert "the database is full" in report.body
    assert "********************" in report.body  # the report shows the POST, cleansed
    assert SECRET not in report.body
    for body, _ in report.alternatives:
        assert SECRET not in body

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    assert f"Internal Server Error: {url}" in logged
    assert SECRET not in logged
