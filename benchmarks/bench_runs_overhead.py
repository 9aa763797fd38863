"""The cost of scheduling a VM backup: a run of many tiny VMs (no data to speak of), so that
what is measured is the fixed cost per VM beyond the transfer: the Celery task and its fresh
process, the claim, the lock, the clean-up, the snapshot, the commit, the rows and the task tree.

Goal (issue 14): time per VM beyond the transfer < 0.5 s, where that time is the run's wall time
× worker processes / VMs − the mean transfer time of a VM (the baseline: the transfers
themselves, measured in the same run). Where the time goes is printed per kind of step.

    .venv/bin/python benchmarks/bench_runs_overhead.py [--vms 200] [--processes 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from goals import at_most, summary
from run_site import RunSite

GOAL = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with RunSite(vms=args.vms, disk_size="2M", folder=args.dir) as site:
        from backups.models import BackupJob, Remote

        remote = Remote.objects.create(name="bench", path=str(site.folder / "remote"))
        job = BackupJob.objects.create(
            name="bench", vm_uuids=site.vm_uuids(), concurrency=args.processes
        )
        job.remotes.set([remote])
        site.start_worker(args.processes)
        times = site.run(job)
        site.stop_worker()
        per_vm = times.wall * args.processes / times.vms
        transfer = times.transfer / times.vms
        print(
            f"{times.vms} VMs with {args.processes} worker processes: {times.wall:.1f} s; "
            f"{per_vm:.3f} s of a process per VM, of which {transfer:.3f} s transfer"
        )
        for line in times.lines():
            print(line)
        print(f"seconds per VM beyond the transfer: {at_most(per_vm - transfer, GOAL, 3)}")
    summary()


if __name__ == "__main__":
    main()
