"""Benchmark of the VM list page at 100 and at 10,000 cached VMs (not run by the test suite).

    .venv/bin/python benchmarks/bench_pools_pages.py [--small 100] [--large 10000]

Fills a throwaway SQLite cache with VMs (two disks each), renders ``/vms/`` (first page, then a
search, then a sort by pool) and prints the median time and the query count at both sizes, and
the ratio large/small.

Goals (issue 5): the query count does not grow (ratio 1); the time grows far slower than the
rows: a tenth of their ratio at most (100× the VMs, at most 10× the time).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from goals import at_most, summary  # noqa: E402
from throwaway_site import throwaway_site, time_pages  # noqa: E402

PAGES = ["/vms/", "/vms/?q=vm-00042", "/vms/?sort=pool&page=3"]


def fill(count: int) -> None:
    from django.utils import timezone

    from pools.models import VBD, VDI, VM, Pool, WatcherHeartbeat

    VM.objects.all().delete()
    VBD.objects.all().delete()
    VDI.objects.all().delete()
    pool, _ = Pool.objects.get_or_create(
        name="bench", defaults={"master_url": "https://bench.example", "status": "connected"}
    )
    now = timezone.now()
    WatcherHeartbeat.objects.update_or_create(
        name="watch_pools", defaults={"hostname": "b", "pid": 1, "started_at": now, "beat_at": now}
    )
    vms, vdis, vbds = [], [], []
    for n in range(count):
        vm_ref = f"OpaqueRef:{uuid.uuid4()}"
        vms.append(
            VM(
                pool=pool,
                ref=vm_ref,
                uuid=str(uuid.uuid4()),
                name_label=f"vm-{n:05d}",
                power_state="Running",
                record={"name_label": f"vm-{n:05d}", "VBDs": []},
            )
        )
        for disk in range(2):
            vdi_ref = f"OpaqueRef:{uuid.uuid4()}"
            vdis.append(
                VDI(pool=pool, ref=vdi_ref, name_label=f"disk {disk}", virtual_size=1 << 34)
            )
            vbds.append(
                VBD(
                    pool=pool,
                    ref=f"OpaqueRef:{uuid.uuid4()}",
                    vm_ref=vm_ref,
                    vdi_ref=vdi_ref,
                    type="Disk",
                    userdevice=str(disk),
                )
            )
    VM.objects.bulk_create(vms, batch_size=1000)
    VDI.objects.bulk_create(vdis, batch_size=1000)
    VBD.objects.bulk_create(vbds, batch_size=1000)


def measure(count: int) -> dict[str, tuple[float, int]]:
    fill(count)
    return time_pages(PAGES, warm_up=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    options = parser.parse_args()
    with throwaway_site("bench-pages-"):
        small = measure(options.small)
        large = measure(options.large)
    for url in PAGES:
        (small_time, small_queries), (large_time, large_queries) = small[url], large[url]
        rows = options.large / options.small
        print(
            f"{url:28} {options.small:>6} VMs: {small_time * 1000:6.1f} ms {small_queries:>2} queries"
            f" | {options.large:>6} VMs: {large_time * 1000:6.1f} ms {large_queries:>2} queries"
            f" | ratio time {at_most(large_time / small_time, round(rows / 10, 2))},"
            f" queries {at_most(large_queries / small_queries, 1.0)}"
        )
    summary()


if __name__ == "__main__":
    main()
