"""Smoke test of `make run`'s processes: the Procfile under honcho, as a user starts it."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
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


def test_procfile_brings_up_web_admin_worker_and_flower_and_ctrl_c_stops_them(tmp_path):
    ports = {"web": free_port(), "flower": free_port(), "redis": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        XOWEB_VAR_DIR=str(tmp_path / "var"),
        XOWEB_WEB_PORT=str(ports["web"]),
        XOWEB_FLOWER_PORT=str(ports["flower"]),
        XOWEB_REDIS_PORT=str(ports["redis"]),
        DJANGO_SETTINGS_MODULE="xoweb.settings",
    )
    for command in (["migrate", "--noinput", "-v", "0"], ["ensure_admin"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
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

        done = subprocess.run(
            [sys.executable, "manage.py", "check_workers", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert "answered" in done.stdout, done.stderr + honcho.log()[-3000:]
        started = process_tree(honcho.pid)
        assert len(started) >= 5, f"expected redis, web, worker, beat, flower; got {started}"
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
