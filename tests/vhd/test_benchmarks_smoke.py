"""The VHD benchmarks run (on tiny sizes) and print a ratio next to the goal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["bench_vhd_stream.py", "--size-mib", "8", "--rounds", "1"],
        ["bench_vhd_merge.py", "--size-mib", "16", "--k", "2", "4", "--rounds", "1"],
        ["bench_vhd_chain.py", "--size-mib", "8", "--rounds", "1"],
    ],
)
def test_benchmark_runs_and_prints_its_ratio(tmp_path, command):
    script, *args = command
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "ratio" in result.stdout and "(goal >= 0." in result.stdout
    assert list(tmp_path.iterdir()) == []
