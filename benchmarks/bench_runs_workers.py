"""More worker processes go faster: one run of 8 VMs with 1 GiB disks, backed up by a worker
with 1 process, then by one with 2 processes (same site, same run, in this run of the
benchmark), and where the time went.

Goal (issue 14): speed-up = time with 1 process / time with 2 processes >= 1.5 on this 2-core
machine. Everything is real: the simulator over HTTP exports the disks, the worker processes
(``--max-tasks-per-child=1``, as the Procfile) write them to a local remote with their SHA-256,
the watcher keeps the cache, Redis carries the tasks. Every disk is a full (forced), so both
runs do the same work; the best of ``--rounds`` is kept on each side, rounds interleaved.

The machine's own ceiling is measured in the same run: the same disks downloaded plainly from
the simulator (``curl`` into a file, then fsync), one at a time and then two at a time. A shared
2-core machine that cannot run two plain downloads twice as fast cannot run two backups twice as
fast either; the benchmark prints both speed-ups and ours as a share of the machine's.

    .venv/bin/python benchmarks/bench_runs_workers.py [--vms 8] [--size-gib 1] [--rounds 1]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_pool import curl_export
from goals import at_least, summary
from run_site import RunSite

GOAL = 1.5


def plain_downloads(site: RunSite, disks: list[str], at_once: int) -> float:
    """Seconds to download every disk's export with curl into a file and fsync it, ``at_once``
    at a time (the baseline: no parsing, no hashing, no database)."""
    target = site.folder / "plain"
    target.mkdir(exist_ok=True)

    def download(disk: str) -> None:
        curl_export(site.sim, disk, target / disk.replace(":", "_"))

    started = time.perf_counter()
    with ThreadPoolExecutor(at_once) as pool:
        list(pool.map(download, disks))
    elapsed = time.perf_counter() - started
    shutil.rmtree(target)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=8)
    parser.add_argument("--size-gib", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = int(args.size_gib * 1024**3) // (2 * 1024**2) * (2 * 1024**2)
    with RunSite(vms=0, disk_size="16M", folder=args.dir) as site:
        disks = site.add_filled_vms(args.vms, size)
        from backups.models import BackupJob, Remote

        remote_path = site.folder / "remote"
        remote = Remote.objects.create(name="bench", path=str(remote_path))
        job = BackupJob.objects.create(name="bench", vm_uuids=site.vm_uuids(), concurrency=16)
        job.remotes.set([remote])
        best, plain = {}, {1: [], 2: []}
        for _round in range(args.rounds):
            for at_once in (1, 2):
                plain[at_once].append(plain_downloads(site, disks, at_once))
            for processes in (1, 2):
                site.start_worker(processes)
                site.sim.coalesce()  # what the SR does between two runs (untimed)
                shutil.rmtree(remote_path, ignore_errors=True)  # each run writes the same
                times = site.run(job)
                site.stop_worker()
                if processes not in best or times.wall < best[processes].wall:
                    best[processes] = times
        data = args.vms * size
        for processes, times in sorted(best.items()):
            print(
                f"{processes} worker process(es): {times.wall:.2f} s for {times.vms} VMs, "
                f"{data / 2**20 / times.wall:.0f} MiB/s; where the time went:"
            )
            for line in times.lines():
                print(line)
        machine = min(plain[1]) / min(plain[2])
        print(
            f"plain downloads (curl + fsync) of the same disks: {min(plain[1]):.2f} s one at a "
            f"time, {min(plain[2]):.2f} s two at a time: the machine's speed-up {machine:.2f}"
        )
        speedup = best[1].wall / best[2].wall
        print(f"ours as a share of the machine's speed-up: {speedup / machine:.2f}")
        print(f"speed-up with 2 processes: ratio {at_least(speedup, GOAL)}")
    summary()


if __name__ == "__main__":
    main()
