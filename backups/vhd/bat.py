"""The block allocation table: one big-endian sector offset per block (reference/vhd.md §4).

Held in an ``array('I')`` (native order once decoded) so that a 2 TiB disk's million entries
cost 4 MiB and lookups are plain indexing.
"""

from __future__ import annotations

import sys
from array import array

from .fields import SECTOR, UNUSED, round_up


class Bat:
    """Block allocation table. ``entries[i]`` is block ``i``'s sector offset or ``UNUSED``."""

    __slots__ = ("entries",)

    def __init__(self, entries: array) -> None:
        self.entries = entries

    @classmethod
    def empty(cls, count: int) -> Bat:
        return cls(array("I", [UNUSED]) * count)

    @classmethod
    def unpack(cls, raw: bytes | memoryview, count: int) -> Bat:
        entries = array("I")
        entries.frombytes(bytes(raw[: count * 4]))
        if sys.byteorder == "little":
            entries.byteswap()
        return cls(entries)

    def pack(self) -> bytes:
        """On-disk bytes, padded to a sector with ``UNUSED`` entries like blktap does."""
        out = array("I", self.entries)
        padding = (round_up(len(out) * 4) - len(out) * 4) // 4
        out.extend([UNUSED] * padding)
        if sys.byteorder == "little":
            out.byteswap()
        return out.tobytes()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, index: int) -> int:
        """Sector offset of block ``index``, or ``UNUSED`` (also beyond the table)."""
        entries = self.entries
        return entries[index] if 0 <= index < len(entries) else UNUSED

    def allocated(self) -> list[int]:
        """Indices of allocated blocks, ascending."""
        return [index for index, entry in enumerate(self.entries) if entry != UNUSED]

    def by_offset(self) -> list[tuple[int, int]]:
        """``(byte offset, index)`` of allocated blocks in file order."""
        return sorted(
            (entry * SECTOR, index) for index, entry in enumerate(self.entries) if entry != UNUSED
        )
