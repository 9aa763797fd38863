"""Settings come from the environment, refuse bad values by name, and need no configuration."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.fixtures.processes import ROOT
from xoweb.env import envbool, envint, envlist


def settings_in_subprocess(tmp_path, code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SECRET_KEY", "REDIS_URL"}
    }
    full_env.update(XOWEB_VAR_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="xoweb.settings")
    full_env.update(env)
    return subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; {code}",
        ],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_envbool_names_the_variable_and_the_problem(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"DEBUG='maybe' is not a boolean"):
        envbool("DEBUG")


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("off", False), ("Yes", True), ("", False)]
)
def test_envbool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert envbool("FLAG", default=not expected) is expected


def test_envint_refuses_words_and_values_below_the_minimum(monkeypatch):
    monkeypatch.setenv("XOWEB_REDIS_PORT", "six")
    with pytest.raises(ImproperlyConfigured, match=r"XOWEB_REDIS_PORT='six' is not a whole number"):
        envint("XOWEB_REDIS_PORT", 6380)
    monkeypatch.setenv("XOWEB_REDIS_PORT", "0")
    with pytest.raises(ImproperlyConfigured, match="XOWEB_REDIS_PORT=0 is below its minimum of 1"):
        envint("XOWEB_REDIS_PORT", 6380, minimum=1)


def test_envlist_refuses_an_empty_list(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " , ")
    with pytest.raises(ImproperlyConfigured, match="ALLOWED_HOSTS is set but lists nothing"):
        envlist("ALLOWED_HOSTS", ["localhost"])


def test_a_fresh_checkout_runs_on_sqlite_with_a_generated_secret_key(tmp_path):
    code = (
        "print(settings.DATABASES['default']['ENGINE'], settings.DEBUG, settings.SECRET_KEY,"
        " settings.CELERY_BROKER_URL)"
    )
    first = settings_in_subprocess(tmp_path, code)
    second = settings_in_subprocess(tmp_path, code)

    assert first.returncode == 0, first.stderr
    engine, debug, secret_key, broker = first.stdout.split()
    assert engine == "django.db.backends.sqlite3"
    assert debug == "False"
    # make run's Redis wants the password generated beside the secret key.
    redis_password = (tmp_path / "var" / "redis_password").read_text().strip()
    assert broker == f"redis://:{redis_password}@127.0.0.1:6380/0"
    assert len(secret_key) > 40
    assert second.stdout == first.stdout, "the generated secret key changed between runs"
    for secret in ("secret_key", "redis_password"):
        assert stat.S_IMODE((tmp_path / "var" / secret).stat().st_mode) == 0o600


def test_database_url_selects_postgresql(tmp_path):
    done = settings_in_subprocess(
        tmp_path,
        "print(settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['NAME'])",
        DATABASE_URL="postgresql://backup@db.example:5432/xoweb",
    )
    assert done.stdout.split() == ["django.db.backends.postgresql", "xoweb"]


def test_a_bad_value_stops_start_up_with_its_name(tmp_path):
    done = settings_in_subprocess(tmp_path, "pass", DEBUG="sometimes")

    assert done.returncode != 0
    assert "DEBUG='sometimes' is not a boolean" in done.stderr


def test_celery_is_json_only_with_the_database_scheduler(settings):
    assert settings.CELERY_ACCEPT_CONTENT == ["json"]
    # django-celery-beat's DatabaseScheduler, which stamps the firings of backup schedules.
    from django_celery_beat.schedulers import DatabaseScheduler

    from xoweb.beat import Scheduler

    assert settings.CELERY_BEAT_SCHEDULER == "xoweb.beat:Scheduler"
    assert issubclass(Scheduler, DatabaseScheduler)


def test_the_visibility_timeout_must_outlast_a_short_task(tmp_path):
    done = settings_in_subprocess(
        tmp_path,
        "pass",
        XOWEB_BROKER_VISIBILITY_SECONDS="300",
        XOWEB_TASK_TIME_LIMIT="300",
    )
    assert done.returncode != 0
    assert (
        "XOWEB_BROKER_VISIBILITY_SECONDS=300 must be longer than XOWEB_TASK_TIME_LIMIT=300"
        in done.stderr
    )
