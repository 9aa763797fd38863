"""Peak memory of a worker backing up a big disk: flat, whatever the disk size.

Goal (issue 12): the peak RSS of the process doing the backup of a 16 GiB disk stays under
200 MiB. The ratio is against a baseline measured in the same run: the same backup of a small
disk (``--small-mib``) in a fresh process; a ratio near 1.0 says memory does not grow with the
disk. Each backup runs in its own process (``--worker``), which reports its own peak RSS
(``ru_maxrss``) after the backup, so nothing the benchmark itself holds is counted.

    .venv/bin/python benchmarks/bench_backup_memory.py [--size-gib 16] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from engine_pool import BLOCK, SimPool, peak_rss_mib
from goals import at_most, summary

GOAL_MIB = 200
FLAT = 1.25  # the big disk's peak over the small one's: memory does not grow with the disk
JOB = {"id": "be000000-0000-4000-8000-000000000004", "name": "bench", "mode": "delta"}
SCHEDULE = {"id": "be000000-0000-4000-8000-0000000000a4", "name": "daily"}


def worker(url: str, vm: str, remote: str) -> None:
    """Log in, back up ``vm`` to ``remote``, print the outcome and this process's peak RSS."""
    from backups.engine import (
        JobSettings,
        NullProgress,
        RemoteAdapter,
        ScheduleSettings,
        backup_vm,
    )
    from pools.xapi import XapiClient

    with XapiClient(url, "root", "xapisim", timeout=600) as client:
        outcome = backup_vm(
            client,
            vm,
            job=JobSettings(**JOB),
            schedule=ScheduleSettings(**SCHEDULE),
            remotes=[RemoteAdapter(remote, remote_id="r", name="bench")],
            progress=NullProgress(),
            holder="bench",
        )
    print(
        json.dumps(
            {
                "status": outcome.status,
                "error": outcome.error,
                "bytes": outcome.bytes,
                "peak_mib": peak_rss_mib(),
            }
        )
    )


def measure(pool: SimPool, folder: Path, name: str, size: int) -> dict:
    vm, _vdi = pool.make_vm(name, size)
    result = subprocess.run(
        [sys.executable, __file__, "--worker", pool.url, vm, str(folder / f"remote-{name}")],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == "success", report["error"]
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=16)
    parser.add_argument("--small-mib", type=int, default=256)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--worker", nargs=3, metavar=("URL", "VM", "REMOTE"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    big = int(args.size_gib * 1024**3) // BLOCK * BLOCK
    with tempfile.TemporaryDirectory(dir=args.dir) as folder, SimPool(Path(folder) / "sim") as pool:
        small = measure(pool, Path(folder), "small", args.small_mib * 2**20)
        large = measure(pool, Path(folder), "large", big)
    print(
        f"peak RSS of the backup worker: {large['bytes'] / 2**30:.1f} GiB written for a "
        f"{args.size_gib:g} GiB disk, peak in MiB {at_most(large['peak_mib'], GOAL_MIB, digits=0)}; "
        f"against a {args.small_mib} MiB disk's backup ({small['peak_mib']:.0f} MiB): ratio "
        f"{at_most(large['peak_mib'] / small['peak_mib'], FLAT)} (flat)"
    )
    summary()


if __name__ == "__main__":
    main()
