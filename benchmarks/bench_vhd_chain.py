"""Reading a chain of 30 deltas as raw, against reading one file of the same content.

Goal (issue 4): ratio >= 0.7, where ratio = time to read the single file as raw / time to read
the 31-file chain (a full and 30 deltas, each delta rewriting random whole blocks, as XAPI
exports them). The single file is the chain's synthetic full written to disk, read through
the same library; a plain ``read`` of a raw file of the same bytes is printed for scale. Best
of ``--rounds``, measured in the same run.

    /work/main/.venv/bin/python benchmarks/bench_vhd_chain.py [--size-mib 2048]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from goals import at_least, summary

import backups.vhd as vhd

BS = 2 * 1024 * 1024
GOAL = 0.7
DELTAS = 30


def build_chain(folder: Path, size: int, rng: random.Random) -> Path:
    blocks = size // BS
    payload = os.urandom(BS)
    parent: tuple[uuid.UUID, str] | None = None
    path = folder
    for level in range(DELTAS + 1):
        if level == 0:
            indices = list(range(blocks))
        else:
            indices = sorted(rng.sample(range(blocks), max(1, blocks // 20)))
        path = folder / f"2026{level:04d}T000000Z.vhd"
        unique = uuid.uuid4()
        link = vhd.ParentLink(parent[0], parent[1]) if parent else None
        writer = vhd.VhdWriter(path, size=size, blocks=indices, uuid=unique, parent=link)
        with writer:
            for index in indices:
                writer.write_block(index, None, level.to_bytes(4, "big") + payload[4:])
            writer.close()
        parent = (unique, path.name)
    return path


def read_chain(path: Path) -> int:
    total = 0
    with vhd.open_chain(path) as chain:
        for chunk in chain.iter_raw():
            total += len(chunk)
    return total


def read_raw(path: Path) -> int:
    total = 0
    with open(path, "rb", buffering=0) as raw:
        while chunk := raw.read(BS):
            total += len(chunk)
    return total


def timed(function, path: Path) -> float:
    start = time.perf_counter()
    function(path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        folder = Path(name)
        newest = build_chain(folder, size, random.Random(1))
        single = folder / "single.vhd"
        with vhd.open_chain(newest) as chain:
            synthetic = vhd.synthetic_vhd(chain)
            vhd.write_stream(vhd.parse_stream(synthetic.stream()), single, uuid=uuid.uuid4())
            with open(folder / "disk.raw", "wb") as raw:
                for chunk in chain.iter_raw():
                    raw.write(chunk)
        times: dict[str, list[float]] = {"chain": [], "single": [], "raw": []}
        for _ in range(args.rounds):  # interleaved, so all three see the same machine load
            times["chain"].append(timed(read_chain, newest))
            times["single"].append(timed(read_chain, single))
            times["raw"].append(timed(read_raw, folder / "disk.raw"))
        chain_time, single_time, raw_time = (min(times[key]) for key in times)
        mib = size / 2**20
        print(
            f"read {args.size_mib} MiB as raw: chain of 1 full + {DELTAS} deltas {chain_time:.2f} s "
            f"({mib / chain_time:.0f} MiB/s), single VHD {single_time:.2f} s "
            f"({mib / single_time:.0f} MiB/s), plain raw file {raw_time:.2f} s; "
            f"ratio {at_least(single_time / chain_time, GOAL)}"
        )
    summary()


if __name__ == "__main__":
    main()
