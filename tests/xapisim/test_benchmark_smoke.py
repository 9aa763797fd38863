"""The export benchmark runs end to end (tiny size; real numbers come from running it by hand)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_xapisim_export.py"


def test_benchmark_prints_both_ratios() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--size", "8M"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert re.search(r"disk size\s+8 MiB", result.stdout), result.stdout
    assert re.search(r"ratio raw export / cat\s+\d+\.\d{3}", result.stdout), result.stdout
    assert re.search(r"ratio vhd / raw export\s+\d+\.\d{3}", result.stdout), result.stdout
