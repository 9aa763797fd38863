"""Production settings behind HTTPS, and the owner-only files under var/."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from tests.fixtures.processes import ROOT
from xoweb.files import tighten


def manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        k: v
        for k, v in os.environ.items()
        # The browser fixture sets DJANGO_ALLOW_ASYNC_UNSAFE in the test process: not production's.
        if k not in {"DATABASE_URL", "SECRET_KEY", "REDIS_URL", "DEBUG", "XOWEB_HTTPS"}
        and k != "DJANGO_ALLOW_ASYNC_UNSAFE"
    }
    full_env.update(XOWEB_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="xoweb.settings")
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "ALLOWED_HOSTS": "xoweb.example.net",
    "CSRF_TRUSTED_ORIGINS": "https://xoweb.example.net",
}


def test_check_deploy_is_clean_with_xoweb_https(tmp_path):
    done = manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING", XOWEB_HTTPS="1", **PRODUCTION
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_without_it_check_deploy_names_what_is_missing(tmp_path):
    done = manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert done.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in done.stderr


def test_xoweb_https_turns_on_secure_cookies_hsts_and_the_proxy_header(tmp_path):
    code = (
        "from django.conf import settings as s; print(s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER)"
    )
    on = manage(tmp_path, "shell", "-c", code, XOWEB_HTTPS="1")
    assert on.stdout.split("\n")[-2] == (
        "True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https')"
    ), on.stderr
    off = manage(tmp_path, "shell", "-c", code)
    assert off.stdout.split("\n")[-2] == "False False 0 None"
    bad = manage(tmp_path, "check", XOWEB_HTTPS="sometimes")
    assert bad.returncode != 0 and "XOWEB_HTTPS='sometimes' is not a boolean" in bad.stderr


@pytest.mark.django_db
def test_behind_the_proxy_a_plain_http_request_is_redirected_but_not_the_health_check(
    client, settings
):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert client.get("/pools/", HTTP_X_FORWARDED_PROTO="http").status_code == 301
    assert client.get("/pools/", HTTP_X_FORWARDED_PROTO="https").status_code == 200
    assert client.get("/health/", HTTP_X_FORWARDED_PROTO="http").status_code == 200


def test_an_older_looser_var_is_tightened_at_start_up_with_a_message(tmp_path):
    var = tmp_path / "var"
    (var / "redis").mkdir(parents=True)
    (var / "db.sqlite3").write_bytes(b"")
    (var / "redis" / "appendonly.aof").write_bytes(b"")
    for path, mode in ((var, 0o755), (var / "redis", 0o755)):
        path.chmod(mode)
    for path in (var / "db.sqlite3", var / "redis" / "appendonly.aof"):
        path.chmod(0o644)
    (var / "npm").symlink_to("/usr")  # a link is neither followed nor changed

    first = manage(tmp_path, "check")
    assert first.returncode == 0, first.stderr
    assert "were readable by other users; they are now owner-only" in first.stderr
    for path in (var, var / "redis"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in (var / "db.sqlite3", var / "redis" / "appendonly.aof", var / "secret_key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(os.stat("/usr").st_mode) == 0o755

    second = manage(tmp_path, "check")
    assert "owner-only" not in second.stderr, "said once, when something changed"


def test_tighten_reports_what_it_changed(tmp_path):
    (tmp_path / "open").write_text("")
    (tmp_path / "open").chmod(0o666)
    (tmp_path / "closed").write_text("")
    (tmp_path / "closed").chmod(0o600)
    tmp_path.chmod(0o700)
    assert tighten(tmp_path) == ([tmp_path / "open"], [])
    assert stat.S_IMODE((tmp_path / "open").stat().st_mode) == 0o600


def test_a_file_that_cannot_be_tightened_is_reported_and_the_rest_still_done(tmp_path):
    from pathlib import Path
    from unittest import mock

    for name in ("share", "mine"):
        (tmp_path / name).write_text("")
        (tmp_path / name).chmod(0o644)
    tmp_path.chmod(0o700)
    real_chmod = Path.chmod

    def chmod(path, mode):
        if path.name == "share":
            raise PermissionError(1, "Operation not permitted")
        return real_chmod(path, mode)

    with mock.patch.object(Path, "chmod", chmod):
        tightened, failed = tighten(tmp_path)
    assert tightened == [tmp_path / "mine"]
    assert failed == [f"{tmp_path / 'share'}: Operation not permitted"]
