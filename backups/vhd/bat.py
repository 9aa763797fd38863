"""The block allocation table: one big-endian sector offset per block (docs/vhd.md §4.1).

Held in an ``array('I')`` (native order once decoded) so that a 2 TiB disk's million entries
cost 4 MiB and lookups are plain indexing.
"""

from __future__ import annotations

import re
import sys
from array import array

from .fields import SECTOR, UNUSED, round_up

#: After ANDing an entry's four bytes: 0xFF means unused (→ 0), anything else allocated (→ 1).
_MARK = bytes([1] * 255 + [0])
_ALLOCATED = re.compile(b"\x01")


class Bat:
    """Block allocation table. ``entries[i]`` is block ``i``'s sector offset or ``UNUSED``."""

    __slots__ = ("_allocated", "entries")

    def __init__(self, entries: array) -> None:
        self.entries = entries
        self._allocated: list[int] | None = None

    def copy(self) -> Bat:
        """An independent copy (keeping the scan already done)."""
        twin = Bat(self.entries[:])
        twin._allocated = self._allocated
        return twin

    def set(self, index: int, sector: int) -> None:
        """Change one entry (use this rather than ``entries[...] =``: it resets the cache)."""
        self.entries[index] = sector
        self._allocated = None

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
        """Indices of allocated blocks, ascending.

        The scan runs in C: the four bytes of every entry are ANDed as big integers, so an
        entry is unused exactly when the result byte is 0xFF; a million entries (2 TiB) cost
        milliseconds, and only allocated entries reach Python. Cached until ``set``.
        """
        if self._allocated is None:
            raw = self.entries.tobytes()
            count = len(self.entries)
            combined = -1
            for lane in range(4):
                combined &= int.from_bytes(raw[lane::4], "little")
            marker = (combined & ((1 << (8 * count)) - 1)).to_bytes(count, "little")
            self._allocated = [
                match.start() for match in _ALLOCATED.finditer(marker.translate(_MARK))
            ]
        return list(self._allocated)

    def by_offset(self) -> list[tuple[int, int]]:
        """``(byte offset, index)`` of allocated blocks in file order."""
        entries = self.entries
        return sorted((entries[index] * SECTOR, index) for index in self.allocated())
