"""``backup_check --deep`` of a remote against reading its files (``cat > /dev/null``).

Goal (issue 13): ratio >= 0.8, where ratio = time to read every file / time of the deep check.

Steps: ``--vms`` halted VMs, each with one disk of ``--size-gib`` whose every block holds data;
a full backup of each, then ``--deltas`` deltas each after rewriting ``--change`` of the
blocks (by default 4 VMs of 256 MiB: 1.4 GiB in 20 files, a remote of several VMs as remotes
are; the SHA-256 of one file is sequential, so a remote of one large VM is bounded by one
core's SHA-256 speed instead — ``--vms 1 --size-gib 1`` measures that case). The deep check is the engine's ``verify_remote(deep=True)``, what ``backup_check
--deep`` runs (the lock of each VM folder, every metadata file parsed, every VHD checked with
its chain, every file read whole and its SHA-256 compared). The baseline is one ``cat`` of
every file of the remote to ``/dev/null``.

Both start cold: each file's pages are dropped from the page cache first
(``posix_fadvise(DONTNEED)`` on the clean, fsynced files), as on a remote much larger than the
memory of the host checking it — the case the goal is about. Rounds are interleaved, the best
of each kept. The same measure with the files in the cache is printed for information: there
``cat`` is a memory copy and the check is bounded by SHA-256 (about 1.7 GB/s per core here).

    .venv/bin/python benchmarks/bench_backup_check.py [--vms 4] [--size-gib 0.25] [--deltas 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from engine_pool import BLOCK, SimPool, timed
from goals import at_least, summary

from backups.engine import JobSettings, NullProgress, RemoteAdapter, ScheduleSettings, backup_vm
from backups.engine.verify import verify_remote
from backups.engine.verify_report import Content

GOAL = 0.8
JOB = JobSettings(id="be000000-0000-4000-8000-000000000013", name="bench", mode="delta")
DAILY = ScheduleSettings(id="be000000-0000-4000-8000-0000000000d3", name="daily")


def remote_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file() and ".lock" not in str(path))


def drop_cache(files: list[Path]) -> None:
    """Make the next read of each file come from the disk (the files are clean: fsynced)."""
    os.sync()
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def cat(files: list[Path]) -> None:
    with open(os.devnull, "wb") as sink:
        subprocess.run(["cat", *map(str, files)], stdout=sink, check=True)


def deep_check(remote: RemoteAdapter, total: int) -> None:
    report = verify_remote(remote, deep=True, holder="bench")
    assert report.failed == [], [report.problems(b) for b in report.failed]
    assert {file.content for file in report.files.values()} == {Content.OK}
    assert report.bytes_read == total, (report.bytes_read, total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=0.25)
    parser.add_argument("--vms", type=int, default=4)
    parser.add_argument("--deltas", type=int, default=4)
    parser.add_argument("--change", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = max(BLOCK, int(args.size_gib * 1024**3) // BLOCK * BLOCK)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder, SimPool(Path(folder) / "sim") as pool:
        client = pool.client
        assert client is not None
        remote = RemoteAdapter(Path(folder) / "remote", remote_id="r", name="bench")
        for number in range(args.vms):
            vm, vdi = pool.make_vm(f"bench-check-{number}", size)
            for backup in range(args.deltas + 1):
                pool.coalesce()
                if backup:
                    blocks = max(1, round(size // BLOCK * args.change))
                    pool.change(vdi, blocks, seed=backup)
                outcome = backup_vm(
                    client,
                    vm,
                    job=JOB,
                    schedule=DAILY,
                    remotes=[remote],
                    progress=NullProgress(),
                    holder="bench",
                    clock=lambda n=backup: time.time() + n,
                )
                assert outcome.status == "success", outcome.error
        files = remote_files(remote.root)
        vhds = [path for path in files if path.suffix == ".vhd"]
        total = sum(path.stat().st_size for path in vhds)
        everything = sum(path.stat().st_size for path in files)
        cold_cat, cold_check, warm_cat, warm_check = [], [], [], []
        for _round in range(args.rounds):
            drop_cache(files)
            cold_cat.append(timed(cat, files)[0])
            drop_cache(files)
            cold_check.append(timed(deep_check, remote, total)[0])
            warm_cat.append(timed(cat, files)[0])
            warm_check.append(timed(deep_check, remote, total)[0])
        mib = everything / 2**20
        baseline, ours = min(cold_cat), min(cold_check)
        print(
            f"remote of {args.vms} VM(s), {len(vhds)} VHD files, {mib:.0f} MiB; "
            f"warm (in the page cache, for information): cat {min(warm_cat):.2f} s, "
            f"deep check {min(warm_check):.2f} s ({mib / min(warm_check):.0f} MiB/s)"
        )
        print(
            f"backup_check --deep from the disk: deep check {ours:.2f} s ({mib / ours:.0f} "
            f"MiB/s), cat > /dev/null {baseline:.2f} s ({mib / baseline:.0f} MiB/s), "
            f"ratio {at_least(baseline / ours, GOAL)}"
        )
    summary()


if __name__ == "__main__":
    main()
