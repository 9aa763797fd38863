"""Benchmark of the task reporter, the estimates and the task page (not run by the test suite).

    .venv/bin/python benchmarks/bench_tasks.py [--blocks 200000] [--small 10] [--large 10000]

Prints, each against a baseline measured in the same run:
* the reporter: ``advance()`` per 64 KiB block against a bare loop, and the database writes it
  made (throttled: about one a second plus one per whole percent, never one per block);
* the estimate of a backup run of 50 VMs × 3 disks with full histories;
* the task page and its JSON at ``--small`` and ``--large`` tasks: median time, query count and
  the ratio large/small.

Goals (issue 6, as numbers): the reporter writes at most ``seconds + 103`` times (one a second,
one per percent from 0 to 100, and the end's two) and costs at most 10 µs per ``advance()``;
the run's estimate costs at most its 150 leaves' worth (ratio to one disk <= 150); the pages'
query count does not grow with the number of tasks (ratio 1).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from goals import at_most, summary  # noqa: E402
from throwaway_site import throwaway_site, time_pages  # noqa: E402


def bench_reporter(blocks: int) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks.reporter import task

    block = 64 * 1024
    started = time.perf_counter()
    done = 0
    for _ in range(blocks):
        done += block
    bare = time.perf_counter() - started
    with CaptureQueriesContext(connection) as queries, task("bench", total=blocks * block) as t:
        started = time.perf_counter()
        for _ in range(blocks):
            t.advance(block)
        reported = time.perf_counter() - started
    writes = sum(1 for q in queries.captured_queries if q["sql"].startswith("UPDATE"))
    per_block = (reported - bare) / blocks * 1e6
    print(
        f"reporter: {blocks} blocks in {reported:.2f} s (bare loop {bare:.3f} s): "
        f"{at_most(per_block, 10.0)} µs per advance(); "
        f"{at_most(writes, int(reported) + 103, digits=0)} database writes "
        f"({writes / max(reported, 1e-9):.0f}/s, {blocks / max(writes, 1):.0f} blocks per write)"
    )


def bench_estimate() -> None:
    from tasks.estimates import Track, estimate

    now = 1_800_000_000.0
    disks = []
    for vm in range(50):
        for disk in range(3):
            start = now - 3600 + vm * 60 + disk * 20
            history = [(start + i * 5, i * 5e6) for i in range(200)]
            finished = start + 1000 < now
            disks.append(
                Track(
                    started=start,
                    total=1e9,
                    done=history[-1][1],
                    history=history,
                    ended=start + 1000 if finished else None,
                )
            )
    vms = [Track(started=None, children=disks[i * 3 : i * 3 + 3]) for i in range(50)]
    run = Track(started=now - 3600, children=vms)
    leaf = disks[-1]
    timings = {}
    for name, track in (("one disk", leaf), ("run of 50 VMs × 3 disks", run)):
        samples = []
        for _ in range(20):
            started = time.perf_counter()
            estimate(track, now)
            samples.append(time.perf_counter() - started)
        timings[name] = statistics.median(samples)
    ratio = timings["run of 50 VMs × 3 disks"] / timings["one disk"]
    print(
        f"estimate: one disk {timings['one disk'] * 1e3:.2f} ms, run of 150 disks "
        f"{timings['run of 50 VMs × 3 disks'] * 1e3:.2f} ms, ratio {at_most(ratio, 150)}"
    )


def fill(count: int) -> None:
    from django.utils import timezone

    from tasks.models import Task

    Task.objects.all().delete()
    now = timezone.now()
    Task.objects.bulk_create(
        Task(name=f"run {i}", status="success", created=now, started=now, ended=now)
        for i in range(count)
    )
    for root in Task.objects.order_by("-pk")[:25]:
        for vm in range(3):
            child = Task.objects.create(name=f"vm {vm}", parent=root, root=root, total=1e9)
            Task.objects.bulk_create(
                Task(name=f"disk {d}", parent=child, root=root, total=5e8, done=1e8)
                for d in range(2)
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=10_000)
    options = parser.parse_args()
    with throwaway_site("xoweb-bench-tasks-"):
        bench_reporter(options.blocks)
        bench_estimate()
        paths = ["/tasks/", "/tasks/?status=running", "/tasks/api/"]
        fill(options.small)
        small = time_pages(paths)
        fill(options.large)
        large = time_pages(paths)
        for path in paths:
            (t_small, q_small), (t_large, q_large) = small[path], large[path]
            print(
                f"{path:<24} {options.small:>6} tasks {t_small * 1e3:7.1f} ms {q_small:>2} queries"
                f" | {options.large:>6} tasks {t_large * 1e3:7.1f} ms {q_large:>2} queries"
                f" | time ×{t_large / t_small:.2f}, queries ×{at_most(q_large / q_small, 1.0)}"
            )
    summary()


if __name__ == "__main__":
    main()
