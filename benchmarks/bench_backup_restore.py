"""Restore of a full + 30 deltas to an SR against importing the same bytes as one raw stream.

Goal (issue 12): ratio >= 0.8, where ratio = raw import time / restore time.

Steps: a halted VM with one disk of ``--size`` whose every block holds data; a full backup,
then ``--deltas`` deltas each after rewriting ``--change`` of the blocks. The restore is
``restore_disk_to_sr`` of the newest backup: ``VDI.create``, then the chain of 31 files read
block by block (newest owner first) as one synthetic VHD streamed to ``/import_raw_vdi``. The
baseline creates a VDI the same way and uploads the same content, prepared in a local file, as
one ``format=raw`` stream. Both results are checked against the pool's SHA-256 of the disk.
Rounds are interleaved, best of each kept.

    .venv/bin/python benchmarks/bench_backup_restore.py [--size-gib 1] [--deltas 30] [--dir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from engine_pool import BLOCK, SimPool, timed
from goals import at_least, summary

from backups.engine import (
    JobSettings,
    NullProgress,
    RemoteAdapter,
    ScheduleSettings,
    backup_vm,
    restore_disk_to_file,
    restore_disk_to_sr,
)

GOAL = 0.8
JOB = JobSettings(id="be000000-0000-4000-8000-000000000003", name="bench", mode="delta")
DAILY = ScheduleSettings(id="be000000-0000-4000-8000-0000000000a3", name="daily")


def raw_import(pool: SimPool, sr: str, source: Path, size: int) -> str:
    client = pool.client
    assert client is not None
    vdi = client.call(
        "VDI.create",
        {
            "name_label": "raw import",
            "name_description": "",
            "SR": sr,
            "virtual_size": str(size),
            "type": "user",
            "sharable": False,
            "read_only": False,
            "other_config": {},
            "xenstore_data": {},
            "sm_config": {},
            "tags": [],
        },
    )

    def chunks():
        with source.open("rb") as handle:
            while chunk := handle.read(BLOCK):
                yield chunk

    client.import_stream(
        "/import_raw_vdi", {"vdi": vdi, "format": "raw"}, chunks(), size, label="raw import"
    )
    return vdi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-gib", type=float, default=1)
    parser.add_argument("--deltas", type=int, default=30)
    parser.add_argument("--change", type=float, default=0.03)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = int(args.size_gib * 1024**3) // BLOCK * BLOCK
    with tempfile.TemporaryDirectory(dir=args.dir) as folder, SimPool(Path(folder) / "sim") as pool:
        client = pool.client
        assert client is not None
        vm, vdi = pool.make_vm("bench-restore", size)
        remote = RemoteAdapter(Path(folder) / "remote", remote_id="r", name="bench")
        for number in range(args.deltas + 1):
            pool.coalesce()
            if number:
                pool.change(vdi, max(1, round(size // BLOCK * args.change)), seed=number)
            outcome = backup_vm(
                client,
                vm,
                job=JOB,
                schedule=DAILY,
                remotes=[remote],
                progress=NullProgress(),
                holder="bench",
                clock=lambda n=number: time.time() + n,
            )
            assert outcome.status == "success", outcome.error
        entry = remote.list_backups(vm)[-1]
        disk = entry.disks[0]
        expected = pool.sim("vdi_sha256", vdi)
        content = Path(folder) / "content.raw"
        assert restore_disk_to_file(remote, entry.path, disk.vdi_uuid, content).sha256 == expected
        pool_record = next(iter(client.get_all_records("pool").values()))
        sr = pool_record["default_SR"]
        sr_uuid = client.call("SR.get_uuid", sr)
        ours, raws = [], []
        for _round in range(args.rounds):
            elapsed, new_uuid = timed(
                restore_disk_to_sr, client, remote, entry.path, disk.vdi_uuid, sr_uuid
            )
            new = client.call("VDI.get_by_uuid", new_uuid)
            assert pool.sim("vdi_sha256", new) == expected
            client.call("VDI.destroy", new)
            ours.append(elapsed)
            elapsed, new = timed(raw_import, pool, sr, content, size)
            assert pool.sim("vdi_sha256", new) == expected
            client.call("VDI.destroy", new)
            raws.append(elapsed)
        best, baseline = min(ours), min(raws)
        mib = size / 2**20
        print(
            f"restore to an SR of a full + {args.deltas} deltas ({mib:.0f} MiB disk): restore "
            f"{best:.2f} s ({mib / best:.0f} MiB/s), one raw import {baseline:.2f} s "
            f"({mib / baseline:.0f} MiB/s), ratio {at_least(baseline / best, GOAL)}"
        )
    summary()


if __name__ == "__main__":
    main()
