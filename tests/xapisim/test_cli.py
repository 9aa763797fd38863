"""The command line: errors name the option and the problem; a busy port is reported."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xapisim", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_disk_size_is_refused(tmp_path: Path) -> None:
    result = run("--port", "0", "--data", str(tmp_path), "--disk-size", "lots")
    assert result.returncode == 2
    assert (
        "--disk-size: size 'lots' is not a positive number with an optional K/M/G/T unit"
        in result.stderr
    )
    assert result.stdout == ""


def test_busy_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("--port", str(port), "--data", str(tmp_path), "--vms", "1")
    assert result.returncode == 2
    assert f"xapisim: cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert result.stdout == ""


def test_bad_sr_size_and_api_version_are_refused(tmp_path: Path) -> None:
    for option, value, message in (
        ("--sr-size", "huge", "--sr-size: size 'huge' is not a positive number"),
        ("--api-version", "new", "--api-version: version 'new' is not like 21.4.0"),
    ):
        result = run("--port", "0", "--data", str(tmp_path), option, value)
        assert result.returncode == 2
        assert message in result.stderr
        assert result.stdout == ""
    assert not (tmp_path / "state.pickle").exists()  # nothing was made
