"""Every benchmark prints its goals and whether this run met them (on tiny sizes here, where
the numbers mean nothing: what is checked is that each says its goal and its verdict)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"

#: Each benchmark script with tiny options. A new bench_*.py must be added here.
TINY = {
    "bench_backup_check.py": [
        "--size-gib",
        "0.03125",
        "--vms",
        "1",
        "--deltas",
        "2",
        "--rounds",
        "1",
    ],
    "bench_backup_delta.py": ["--size-gib", "0.0625", "--rounds", "1"],
    "bench_backup_full.py": ["--size-gib", "0.0625", "--rounds", "1"],
    "bench_backup_memory.py": ["--size-gib", "0.0625", "--small-mib", "16"],
    "bench_backup_restore.py": ["--size-gib", "0.03125", "--deltas", "3", "--rounds", "1"],
    "bench_pools_pages.py": ["--small", "3", "--large", "6"],
    "bench_pools_sync.py": ["--vms", "3", "--changes", "2"],
    "bench_runs_overhead.py": ["--vms", "3"],
    "bench_runs_workers.py": ["--vms", "2", "--size-gib", "0.0078125"],
    "bench_retention_merge.py": [
        "--size-mib",
        "16",
        "--sparse-gib",
        "0.125",
        "--k",
        "1",
        "2",
        "--rounds",
        "1",
    ],
    "bench_tasks.py": ["--blocks", "2000", "--small", "2", "--large", "4"],
    "bench_vhd_chain.py": ["--size-mib", "8", "--rounds", "1"],
    "bench_vhd_merge.py": ["--size-mib", "16", "--k", "2", "--rounds", "1"],
    "bench_vhd_stream.py": ["--size-mib", "8", "--rounds", "1"],
    "bench_xapisim_export.py": ["--size", "4M"],
}


def test_every_benchmark_is_listed():
    assert sorted(path.name for path in BENCHMARKS.glob("bench_*.py")) == sorted(TINY)


@pytest.mark.parametrize("script", sorted(TINY))
def test_the_benchmark_prints_its_goals_and_verdicts(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *TINY[script]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env={"TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = re.findall(r"\(goal (?:>=|<=) [\d.]+: (met|NOT met)\)", done.stdout)
    assert verdicts, done.stdout
    last = done.stdout.strip().splitlines()[-1]
    missed = verdicts.count("NOT met")
    assert last == (
        f"goals: {missed} of {len(verdicts)} NOT met"
        if missed
        else f"goals: all {len(verdicts)} met"
    )
