"""Random write histories turned into VHD chains, with the bytes each level must read.

A history is a list of layers, each a list of writes ``(first sector, sector count)``. A layer
becomes one file: the blocks it touches, with a bitmap of exactly the written sectors
(partial bitmaps, unwritten sectors filled with 0xAA junk that must never be read) or, for a
"whole" layer, complete blocks with full bitmaps as XAPI exports them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

import backups.vhd as vhd
from backups.vhd.bitmap import from_mask

SECTOR = 512


@dataclass
class Layer:
    writes: list[tuple[int, int]]
    whole: bool


@dataclass
class History:
    size: int
    block_size: int
    layers: list[Layer]


@st.composite
def histories(draw, max_layers: int = 4, max_blocks: int = 12) -> History:
    block_size = draw(st.sampled_from([4096, 16384, 65536]))
    spb = block_size // SECTOR
    sectors = draw(st.integers(min_value=1, max_value=max_blocks * spb))
    layers = []
    for _ in range(draw(st.integers(min_value=1, max_value=max_layers))):
        writes = draw(
            st.lists(
                st.tuples(
                    st.integers(min_value=0, max_value=sectors - 1),
                    st.integers(min_value=1, max_value=3 * spb),
                ),
                max_size=5,
            )
        )
        writes = [(first, min(count, sectors - first)) for first, count in writes]
        layers.append(Layer(writes, draw(st.booleans())))
    return History(sectors * SECTOR, block_size, layers)


def sector_fill(level: int, sector: int) -> bytes:
    """Distinct content per level and sector, so any misplaced sector shows."""
    stamp = f"L{level}S{sector}:".encode()
    return (stamp * (SECTOR // len(stamp) + 1))[:SECTOR]


def write_history(directory: Path, history: History) -> tuple[list[Path], list[bytes]]:
    """Files oldest first and the raw content each level reads."""
    bs, spb = history.block_size, history.block_size // SECTOR
    disk = bytearray(history.size)
    paths: list[Path] = []
    expected: list[bytes] = []
    parent: tuple[uuid.UUID, Path] | None = None
    for level, layer in enumerate(history.layers):
        touched: dict[int, int] = {}
        for first, count in layer.writes:
            for sector in range(first, first + count):
                disk[sector * SECTOR : (sector + 1) * SECTOR] = sector_fill(level, sector)
                block, within = divmod(sector, spb)
                touched[block] = touched.get(block, 0) | (1 << (spb - 1 - within))
        blocks = {}
        for block, mask in touched.items():
            start = block * bs
            content = bytes(disk[start : start + bs]).ljust(bs, b"\0")
            if layer.whole:
                blocks[block] = (None, content)
                continue
            data = bytearray(b"\xaa" * bs)
            for within in range(spb):
                if mask >> (spb - 1 - within) & 1:
                    data[within * SECTOR : (within + 1) * SECTOR] = content[
                        within * SECTOR : (within + 1) * SECTOR
                    ]
            blocks[block] = (from_mask(mask, spb), bytes(data))
        path = directory / f"202601{level + 1:02d}T000000Z.vhd"
        unique = uuid.uuid4()
        vhd.write_vhd(
            path,
            blocks,
            size=history.size,
            uuid=unique,
            block_size=bs,
            parent=vhd.ParentLink(parent[0], parent[1].name) if parent else None,
            timestamp=1000 + level,
        )
        parent = (unique, path)
        paths.append(path)
        expected.append(bytes(disk))
    return paths, expected


def read_all(path: Path) -> bytes:
    with vhd.open_chain(path) as chain:
        return b"".join(bytes(chunk) for chunk in chain.iter_raw())


def unsound(path: Path, *, ignore: tuple[str, ...] = ("block-size",)) -> list[str]:
    """``check_chain``'s findings as text, without warnings of the kinds ``ignore`` names.

    Histories use small blocks to stay fast, which blktap cannot use (a ``block-size``
    warning); every other finding, warnings included, is a failure.
    """
    return [
        str(finding)
        for finding in vhd.check_chain(path)
        if finding.is_error or finding.kind not in ignore
    ]
