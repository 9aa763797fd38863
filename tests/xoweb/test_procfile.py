"""`make run`'s processes: the Procfile under honcho, started as the Makefile starts it.

One start for the module: the first tests look at the running site (every process up, the demo
pool synced, logins, owner-only files, Redis's password, Flower's), the last presses Ctrl-C with
tasks running in the worker and checks the graceful stop (xoweb/graceful.py).
"""

from __future__ import annotations

import base64
import html
import http.cookiejar
import json
import os
import re
import signal
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.fixtures.make_run import Site, make_run, manage
from tests.fixtures.processes import (
    TEST_TASKS,
    child_pids,
    port_open,
    start_process,
    wait_until,
)

# One `make run` stack at a time, in one test process (the Makefile's --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("make-run")]

#: Tasks still running this long after Ctrl-C are handed back (the default is 10 s).
WORKER_STOP_SECONDS = 3


def http_get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class Browser:
    """Just enough of a browser for Django's login form: cookies, the CSRF token, redirects."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def open(self, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            with self.opener.open(self.base + path, data=data, timeout=10) as response:
                return response.status, response.url, response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.url, error.read().decode(errors="replace")

    def log_in(self, username: str, password: str) -> str:
        _, _, page = self.open("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        form = {"csrfmiddlewaretoken": token, "username": username, "password": password}
        status, url, page = self.open("/login/", form)
        assert status == 200 and url == self.base + "/", (status, url)
        return page


def process_tree(pid: int) -> set[int]:
    tree = set()
    for child in child_pids(pid):
        tree |= {child} | process_tree(child)
    return tree


def command_line(pid: int) -> bytes:
    """What ``ps`` shows of a process; empty when it has exited since it was listed (a backup
    worker's child lives for one task)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return b""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def loose_paths(var: Path) -> list[str]:
    """Everything under ``var`` (links aside) that a group or other users may touch."""
    loose = []
    for path in [var, *var.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            loose.append(f"{path.relative_to(var.parent)} {stat.filemode(mode)}")
    return loose


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The Procfile as it is, except that the workers also know the tests' Celery tasks."""

    def with_test_tasks(line: str) -> str:
        if line.startswith(("worker:", "backups:")):
            return line.replace(" --loglevel=", f" --include={TEST_TASKS} --loglevel=")
        return line

    settings = {
        "XOWEB_WORKER_STOP_SECONDS": str(WORKER_STOP_SECONDS),
        # The demo's own backups would put their tasks beside the ones the stop test counts
        # (tests/xoweb/test_journey.py starts the demo with them).
        "XOWEB_DEMO_BACKUPS": "0",
    }
    with make_run(tmp_path_factory.mktemp("make-run"), settings, with_test_tasks) as site:
        assert (site.tmp / "Procfile").read_text().count(TEST_TASKS) == 2, "worker and backups"
        yield site


def test_every_process_comes_up_behind_a_login_with_the_demo_pool(site):
    status, body = http_get(site.web + "/")
    assert status == 200 and "<h1>Log in to xoweb</h1>" in body, "redirected to the login page"
    status, body = http_get(site.web + "/admin/login/")
    assert status == 200 and 'name="password"' in body
    assert http_get(site.web + "/health/") == (200, '{"status": "ok"}')

    browser = Browser(site.web)
    dashboard = browser.log_in("admin", site.secret("admin_password"))
    assert "<h1>Dashboard</h1>" in dashboard and ">admin</span>" in dashboard

    done = manage(site.env, "check_workers", "--timeout", "60")
    assert "answered" in done.stdout, done.stderr + site.honcho.log()[-3000:]

    last_seen = []

    def demo_pool_synced() -> dict | None:
        time.sleep(0.5)  # each look is a whole manage.py process
        listing = manage(site.env, "pool_list", "--json")
        last_seen[:] = [listing.stdout, listing.stderr]
        demo = (json.loads(listing.stdout) or [{}])[0] if listing.returncode == 0 else {}
        return demo if demo.get("status") == "connected" and demo.get("vms") else None

    try:
        demo = wait_until(demo_pool_synced, timeout=60, message="no demo pool")
    except AssertionError:
        raise AssertionError(f"the watcher never synced the demo pool: {last_seen}") from None
    assert demo["name"] == "demo" and demo["vms"] == 12 and demo["hosts"] == 2
    assert "vm-00000" in browser.open("/vms/")[2]
    assert len(process_tree(site.honcho.pid)) >= 7, "expected every process of the Procfile"


def test_nothing_under_var_is_open_to_other_users(site):
    names = {path.name for path in site.var.rglob("*")}
    expected = {"db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm", "secret_key", "redis_password"}
    expected |= {"admin_password", "flower_password", "appendonlydir", "demo-pool"}
    assert expected <= names, sorted(names)
    assert any(name.startswith("flower.db") for name in names)
    assert any(name.startswith("appendonly.aof") for name in names)
    assert loose_paths(site.var) == []


def test_redis_refuses_a_client_without_the_password_and_nobody_shows_it(site):
    port = site.ports["redis"]
    once = {"socket_timeout": 5, "retry": Retry(NoBackoff(), 0)}  # a refusal is final
    with pytest.raises(redis.AuthenticationError, match=r"authenticated|Authentication required"):
        redis.Redis(port=port, **once).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, password="guessed", **once).ping()
    assert redis.Redis(port=port, password=site.secret("redis_password")).ping()

    password = site.secret("redis_password")
    assert password not in site.honcho.log(), "the Redis password was logged"
    command_lines = [command_line(pid) for pid in process_tree(site.honcho.pid)]
    assert b"redis-server" in b"".join(command_lines)
    assert not any(password.encode() in line for line in command_lines), "visible in ps"


def test_flower_keeps_every_page_behind_its_password(site):
    flower = f"http://127.0.0.1:{site.ports['flower']}"
    password = site.secret("flower_password")
    for path in ("/", "/metrics", "/healthcheck", "/api/workers"):
        assert http_get(flower + path)[0] == 401, f"Flower's {path} answered without a password"
    wait_until(
        lambda: http_get(flower + "/workers", ("admin", password))[0] == 200,
        timeout=30,
        message="Flower refused its own credentials",
    )
    status, metrics = http_get(flower + "/metrics", ("admin", password))
    assert status == 200 and "flower_events_total" in metrics
    assert http_get(flower + "/healthcheck", ("admin", password)) == (200, "OK")


def test_ctrl_c_lets_a_short_task_finish_hands_a_long_one_back_and_stops_redis_last(site):
    """A short task finishes during the warm shutdown; a backup task (acknowledged late) that
    runs on is handed back to its queue."""
    long_journal, short_journal = site.tmp / "long", site.tmp / "short"
    enqueue = (
        f"from {TEST_TASKS} import backup_canary, canary; "
        f"backup_canary.delay({str(long_journal)!r}, 60); canary.delay({str(short_journal)!r}, 2)"
    )
    done = manage(site.env, "shell", "-c", enqueue)
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: long_journal.exists() and short_journal.exists(),
        timeout=30,
        message="the worker did not start both tasks",
    )
    started = process_tree(site.honcho.pid)

    os.killpg(site.honcho.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
    # 130 is what the Makefile's run target takes for "stopped as asked".
    assert site.honcho.popen.wait(40) == 130
    log = site.honcho.log()

    assert short_journal.read_text().splitlines()[-1].startswith("end "), "cut short"
    assert "end" not in long_journal.read_text(), "the long task was meant to be handed back"
    assert "Restoring 1 unacknowledged message(s)" in log
    assert "Traceback" not in log and "CRITICAL" not in log, log[-4000:]
    stopped = re.findall(r"system\s+\| (\w+)\.1 stopped", log)
    assert stopped[-1] == "redis", f"Redis must stop last, the order was {stopped}"
    assert stopped.index("backups") < stopped.index("redis")
    still_listening = [name for name, port in site.ports.items() if port_open(port)]
    assert still_listening == [], f"still running after Ctrl-C: {still_listening}"
    wait_until(
        lambda: not any(alive(pid) for pid in started),
        timeout=15,
        message="processes were left running after Ctrl-C",
    )
    assert loose_paths(site.var) == []

    # The long task is back in the queue: the next start runs it again.
    redis_again = start_process(
        "redis-again", [sys.executable, "-m", "xoweb.graceful", "redis"], site.tmp, site.env
    )
    try:
        client = redis.Redis(port=site.ports["redis"], password=site.secret("redis_password"))
        wait_until(lambda: port_open(site.ports["redis"]), timeout=10, message="no Redis")
        queued = [html.unescape(message.decode()) for message in client.lrange("backups", 0, -1)]
        assert len(queued) == 1 and '"task": "tests.backup_canary"' in queued[0]
        body = json.loads(base64.b64decode(json.loads(queued[0])["body"]))
        assert body[0] == [str(long_journal), 60]
    finally:
        redis_again.stop()
