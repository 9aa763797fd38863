"""Smoke test of `make run`'s processes: the Procfile under honcho, as a user starts it."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.fixtures.processes import (
    ROOT,
    child_pids,
    free_port,
    port_open,
    start_process,
    wait_until,
)

pytestmark = pytest.mark.slow


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


def process_tree(pid: int) -> set[int]:
    tree = set()
    for child in child_pids(pid):
        tree |= {child} | process_tree(child)
    return tree


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def two_free_ports() -> int:
    """A port P such that P and P+1 are free: the demo pool's master and its member."""
    while True:
        port = free_port()
        if not port_open(port + 1):
            return port


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_procfile_brings_up_every_process_with_the_demo_pool_and_ctrl_c_stops_them(tmp_path):
    ports = {
        "web": free_port(),
        "flower": free_port(),
        "redis": free_port(),
        "simulator": two_free_ports(),
    }
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        XOWEB_VAR_DIR=str(tmp_path / "var"),
        XOWEB_WEB_PORT=str(ports["web"]),
        XOWEB_FLOWER_PORT=str(ports["flower"]),
        XOWEB_REDIS_PORT=str(ports["redis"]),
        XOWEB_DEMO_POOL_PORT=str(ports["simulator"]),
        DJANGO_SETTINGS_MODULE="xoweb.settings",
    )
    for command in (["migrate", "--noinput", "-v", "0"], ["ensure_admin"], ["demo_pool"]):
        done = manage(env, *command)
        assert done.returncode == 0, done.stderr

    honcho = start_process(
        "honcho", [sys.executable, "-m", "honcho", "start", "-f", "Procfile"], tmp_path, env
    )
    try:
        for name, port in ports.items():
            wait_until(
                lambda port=port: port_open(port),
                timeout=60,
                message=f"{name} never listened on {port}:\n{honcho.log()[-3000:]}",
            )
        web = f"http://127.0.0.1:{ports['web']}"
        status, body = http_get(web + "/")
        assert status == 200 and "<h1>Dashboard</h1>" in body
        status, body = http_get(web + "/admin/login/")
        assert status == 200 and 'name="password"' in body

        flower = f"http://127.0.0.1:{ports['flower']}/"
        assert http_get(flower)[0] == 401, "Flower must not be open without a password"
        password = (tmp_path / "var" / "flower_password").read_text().strip()
        wait_until(
            lambda: http_get(flower + "workers", ("admin", password))[0] == 200,
            timeout=30,
            message="Flower refused its own credentials",
        )

        done = manage(env, "check_workers", "--timeout", "60")
        assert "answered" in done.stdout, done.stderr + honcho.log()[-3000:]

        last_seen = []

        def demo_pool_synced() -> dict | None:
            time.sleep(0.5)  # each look is a whole manage.py process
            listing = manage(env, "pool_list", "--json")
            last_seen[:] = [listing.stdout, listing.stderr]
            demo = (json.loads(listing.stdout) or [{}])[0] if listing.returncode == 0 else {}
            return demo if demo.get("status") == "connected" and demo.get("vms") else None

        try:
            demo = wait_until(demo_pool_synced, timeout=60, message="no demo pool")
        except AssertionError:
            raise AssertionError(f"the watcher never synced the demo pool: {last_seen}") from None
        assert demo["name"] == "demo" and demo["vms"] == 12 and demo["hosts"] == 2
        assert "vm-00000" in http_get(web + "/vms/")[1]

        started = process_tree(honcho.pid)
        assert len(started) >= 7, f"expected every process of the Procfile, got {started}"
    finally:
        os.kill(honcho.pid, signal.SIGINT)  # what Ctrl-C sends to honcho
        honcho.popen.wait(30)

    still_listening = [name for name, port in ports.items() if port_open(port)]
    assert still_listening == [], f"still running after Ctrl-C: {still_listening}"
    wait_until(
        lambda: not any(alive(pid) for pid in started),
        timeout=15,
        message="processes were left running after Ctrl-C",
    )
