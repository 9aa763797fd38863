"""The backup benchmarks run (on tiny disks) and print their ratio next to the goal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["bench_backup_full.py", "--size-gib", "0.0625", "--rounds", "1"],
        ["bench_backup_delta.py", "--size-gib", "0.0625", "--rounds", "1"],
        ["bench_backup_restore.py", "--size-gib", "0.03125", "--deltas", "3", "--rounds", "1"],
        ["bench_backup_memory.py", "--size-gib", "0.0625", "--small-mib", "16"],
    ],
)
def test_benchmark_runs_and_prints_its_ratio(tmp_path, command):
    script, *args = command
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    assert "ratio" in result.stdout and "(goal " in result.stdout, result.stdout
    assert list(tmp_path.iterdir()) == []
