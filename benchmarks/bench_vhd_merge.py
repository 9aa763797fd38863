"""Merging a delta of K blocks into a 2 GiB parent, against copying K blocks.

Goals (issue 4): ratio >= 0.7, where ratio = time to copy K blocks (read each of the delta's K
blocks, bitmap and data, where its BAT says it is, pwrite them into a file, fsync) / merge
time, best of ``--rounds`` for each; and time grows with K, not with the disk size: merging
the same K into a sparse parent 256 times larger costs at most 2× per block (only its larger
BAT is read). Each merge runs on a fresh copy of the parent. A last line merges the same K into
a parent in XAPI's layout, whose first merge makes room for blktap's batmap after its BAT
(docs/vhd.md §12.1: a block moved to the end, a few more flushes); goal (issue 16, chosen so
that this one-time step stays a small fixed cost): at most 1.5× per block the dense merge.

    /work/main/.venv/bin/python benchmarks/bench_vhd_merge.py [--size-mib 2048]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_vhd_stream import make_export
from goals import at_least, at_most, summary

import backups.vhd as vhd

BS = 2 * 1024 * 1024
GOAL = 0.7
#: Per-block time into a parent 256 times larger, at most this many times the dense one.
SIZE_GOAL = 2.0
#: Per-block time of a first merge into a XAPI-layout parent, at most this many times.
XAPI_GOAL = 1.5


def write_full(path: Path, size: int, allocated: list[int], parent_uuid: uuid.UUID) -> None:
    block = os.urandom(BS)
    writer = vhd.VhdWriter(path, size=size, blocks=allocated, uuid=parent_uuid, validate=False)
    with writer:
        for index in allocated:
            writer.write_block(index, None, block)
        writer.close()


def write_delta(path: Path, size: int, indices: list[int], parent: uuid.UUID) -> None:
    block = os.urandom(BS)
    writer = vhd.VhdWriter(
        path,
        size=size,
        blocks=indices,
        uuid=uuid.uuid4(),
        parent=vhd.ParentLink(parent, "parent.vhd"),
    )
    with writer:
        for index in indices:
            writer.write_block(index, None, block)
        writer.close()


def copy_blocks(delta: Path, target: Path) -> float:
    """The baseline: read each block of the delta (its bitmap and data, at the offset its BAT
    gives) and write it into another file, then fsync: the I/O a merge cannot avoid."""
    with vhd.open_vhd(delta) as layer:
        spans = [
            (layer.block_offset(index), layer.block_span) for index in layer.allocated_blocks()
        ]
    start = time.perf_counter()
    source = os.open(delta, os.O_RDONLY)
    out = os.open(target, os.O_WRONLY | os.O_CREAT, 0o644)
    copied = 0
    try:
        for offset, span in spans:
            data = os.pread(source, span, offset)
            os.pwrite(out, data, copied)
            copied += len(data)
        os.fsync(out)
    finally:
        os.close(source)
        os.close(out)
    elapsed = time.perf_counter() - start
    expected = sum(span for _, span in spans)
    assert copied == expected, f"the baseline copied {copied} bytes of {expected}"
    return elapsed


def merge_once(folder: Path, master: Path, size: int, indices: list[int], base: uuid.UUID):
    work = folder / "work"
    work.mkdir()
    shutil.copyfile(master, work / "parent.vhd")
    write_delta(work / "delta.vhd", size, indices, base)
    os.sync()
    # The baseline first: once merged, "delta.vhd" is the whole parent under the delta's name.
    baseline = copy_blocks(work / "delta.vhd", work / "copy.bin")
    (work / "copy.bin").unlink()
    os.sync()
    start = time.perf_counter()
    vhd.merge(work / "delta.vhd")
    elapsed = time.perf_counter() - start
    shutil.rmtree(work)
    return elapsed, baseline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--k", type=int, nargs="*", default=[16, 64, 256])
    parser.add_argument("--rounds", type=int, default=3, help="best of this many runs")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    blocks = size // BS
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(dir=args.dir) as name:
        folder = Path(name)
        base = uuid.uuid4()
        per_block: dict[int, float] = {}
        master = folder / "master.vhd"
        write_full(master, size, list(range(blocks)), base)
        for k in args.k:
            k = min(k, blocks)
            indices = sorted(rng.sample(range(blocks), k))
            runs = [merge_once(folder, master, size, indices, base) for _ in range(args.rounds)]
            merged, copied = min(run[0] for run in runs), min(run[1] for run in runs)
            print(
                f"merge K={k} blocks into a {args.size_mib} MiB parent: {merged:.3f} s "
                f"({merged / k * 1000:.2f} ms/block); copy K blocks {copied:.3f} s; "
                f"ratio {at_least(copied / merged, GOAL)}"
            )
            per_block[k] = merged / k
        k = min(args.k[0], blocks)
        sparse_size = size * 256
        sparse = folder / "sparse.vhd"
        indices = sorted(rng.sample(range(sparse_size // BS), k))
        # The same shape as the dense case: the parent already holds the delta's blocks.
        held = sorted(set(range(0, sparse_size // BS, 256)) | set(indices))
        write_full(sparse, sparse_size, held, base)
        merged = min(
            merge_once(folder, sparse, sparse_size, indices, base)[0] for _ in range(args.rounds)
        )
        print(
            f"merge K={k} blocks into a {sparse_size // 2**30} GiB sparse parent: {merged:.3f} s "
            f"({merged / k * 1000:.2f} ms/block); per block, against K={k} into the "
            f"{args.size_mib} MiB parent: {at_most(merged / k / per_block[k], SIZE_GOAL)}"
        )
        xapi = folder / "xapi.vhd"
        make_export(xapi, size, base)
        indices = sorted(rng.sample(range(blocks), k))
        merged = min(merge_once(folder, xapi, size, indices, base)[0] for _ in range(args.rounds))
        print(
            f"merge K={k} blocks into a {args.size_mib} MiB parent in XAPI's layout (room made "
            f"for the batmap): {merged:.3f} s ({merged / k * 1000:.2f} ms/block); per block, "
            f"against K={k} above: {at_most(merged / k / per_block[k], XAPI_GOAL)}"
        )
    summary()


if __name__ == "__main__":
    main()
