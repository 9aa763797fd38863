"""Sector bitmaps: which sectors of a block a layer holds (docs/vhd.md §4.2).

Bit order is MSB first: sector ``s`` is byte ``s >> 3``, mask ``0x80 >> (s & 7)``. That is the
order of a big-endian integer, so a bitmap is handled as one Python int (a "mask" whose bit
``spb - 1 - s`` is sector ``s``): OR, AND-NOT and emptiness tests are single big-int
operations, and runs of set sectors come from one regular expression over its binary digits,
never from a per-sector Python loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .fields import SECTOR, ceil_div, round_up

_RUN = re.compile(r"1+")


def bitmap_bytes(sectors_per_block: int) -> int:
    """Meaningful bytes of a bitmap (one bit per sector)."""
    return ceil_div(sectors_per_block, 8)


def bitmap_size(sectors_per_block: int) -> int:
    """On-disk bitmap size: padded to a whole sector."""
    return round_up(bitmap_bytes(sectors_per_block), SECTOR)


def full_bitmap(sectors_per_block: int) -> bytes:
    """A padded bitmap with every sector present (the padding is set too, as XAPI does)."""
    return b"\xff" * bitmap_size(sectors_per_block)


def is_full(bitmap: bytes | memoryview, sectors_per_block: int) -> bool:
    whole, rest = divmod(sectors_per_block, 8)
    if bitmap[:whole] != b"\xff" * whole:
        return False
    return not rest or bitmap[whole] & (0xFF << (8 - rest)) & 0xFF == (0xFF << (8 - rest)) & 0xFF


def to_mask(bitmap: bytes | memoryview, sectors_per_block: int) -> int:
    """The bitmap as an int whose bit ``spb - 1 - s`` is sector ``s``."""
    nbytes = bitmap_bytes(sectors_per_block)
    value = int.from_bytes(bitmap[:nbytes], "big")
    return value >> (nbytes * 8 - sectors_per_block)


def from_mask(mask: int, sectors_per_block: int) -> bytes:
    """A padded on-disk bitmap for a mask."""
    nbytes = bitmap_bytes(sectors_per_block)
    raw = (mask << (nbytes * 8 - sectors_per_block)).to_bytes(nbytes, "big")
    return raw + bytes(bitmap_size(sectors_per_block) - nbytes)


def all_sectors(sectors_per_block: int) -> int:
    return (1 << sectors_per_block) - 1


def runs(mask: int, sectors_per_block: int) -> Iterator[tuple[int, int]]:
    """``(first, end)`` sector ranges (end exclusive) whose bits are set, in order."""
    if not mask:
        return
    if mask == all_sectors(sectors_per_block):
        yield 0, sectors_per_block
        return
    digits = format(mask, f"0{sectors_per_block}b")
    for match in _RUN.finditer(digits):
        yield match.start(), match.end()


def first_partial_byte(bitmap: bytes | memoryview, sectors_per_block: int) -> tuple[int, int]:
    """``(index, value)`` of the first bitmap byte that is not 0xFF, for error messages."""
    for index in range(bitmap_bytes(sectors_per_block)):
        if bitmap[index] != 0xFF:
            return index, bitmap[index]
    return -1, 0xFF
