"""Parse + write of a XAPI export stream against a plain copy of the same bytes.

Goal (issue 4): ratio >= 0.8, where ratio = plain copy time / parse+write time. Both read the
same stream file through a buffered file object in the same chunk size, write a new file
sequentially and fsync it; ours also validates the header and every bitmap and re-opens the
result before renaming it. Baselines are measured in the same run, best of ``--rounds``.

    /work/main/.venv/bin/python benchmarks/bench_vhd_stream.py [--size-mib 2048]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from goals import at_least, summary

import backups.vhd as vhd
from backups.vhd.fields import chs_geometry

BS = 2 * 1024 * 1024
GOAL = 0.8


def make_export(path: Path, size: int, unique: uuid.UUID | None = None) -> None:
    """A full export in XAPI's layout (docs/vhd.md §5.1): caml, BAT at 2048, full bitmaps."""
    entries = size // BS
    footer = vhd.Footer(
        vhd.DiskType.DYNAMIC,
        size,
        unique or uuid.uuid4(),
        creator_app=b"caml",
        creator_version=1,
        geometry=chs_geometry(size),
    ).pack()
    header = vhd.Header(table_offset=2048, max_table_entries=entries).pack()
    bat = vhd.Bat.empty(entries)
    first = 2048 + (-(-entries * 4 // 512)) * 512
    for index in range(entries):
        bat.entries[index] = (first + index * (BS + 512)) // 512
    block = os.urandom(BS)
    with open(path, "wb") as out:
        out.write(footer + header + bytes(512) + bat.pack())
        for index in range(entries):
            out.write(b"\xff" * 512)
            out.write(index.to_bytes(8, "big") + block[8:])
        out.write(footer)


def plain_copy(source: Path, target: Path, hashed: bool) -> None:
    digest = hashlib.sha256() if hashed else None
    with open(source, "rb") as body, open(target, "wb") as out:
        while chunk := body.read(BS + 512):
            out.write(chunk)
            if digest:
                digest.update(chunk)
        out.flush()
        os.fsync(out.fileno())


def parse_and_write(source: Path, target: Path, hashed: bool) -> None:
    with open(source, "rb") as body:
        stream = vhd.parse_stream(body, str(source))
        vhd.write_stream(
            stream, target, uuid=uuid.uuid4(), hasher=hashlib.sha256() if hashed else None
        )


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    elapsed = time.perf_counter() - start
    args[1].unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        source, target = Path(folder) / "export.vhd", Path(folder) / "stored.vhd"
        make_export(source, size)
        mib = source.stat().st_size / 2**20
        for hashed in (False, True):
            copies, ours_times = [], []
            for _ in range(args.rounds):  # interleaved, so both see the same disk state
                copies.append(timed(plain_copy, source, target, hashed))
                ours_times.append(timed(parse_and_write, source, target, hashed))
            copy, ours = min(copies), min(ours_times)
            label = "with SHA-256" if hashed else "no hash"
            print(
                f"stream {args.size_mib} MiB ({label}): plain copy {copy:.2f} s "
                f"({mib / copy:.0f} MiB/s), parse+write {ours:.2f} s ({mib / ours:.0f} MiB/s), "
                f"ratio {at_least(copy / ours, GOAL)}"
            )
    summary()


if __name__ == "__main__":
    main()
