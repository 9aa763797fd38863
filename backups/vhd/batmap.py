"""blktap's batmap: one bit per block meaning "every sector of this block is present".

It follows the BAT (header sector with cookie ``tdbatmap``, then the bits, MSB first) and only
exists in files whose creator is ``tap`` version 1.2 or later (blktap's own rule). xoweb writes
one for whole-block files because it is the only redundancy the format offers for bitmaps: a
flipped bitmap byte in a block the batmap marks full is detected instead of silently reading
zeros or the parent's data. Readers that ignore it (qemu, libvhdi) are unaffected.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .fields import BATMAP_COOKIE, SECTOR, ceil_div, printable, round_up

BATMAP_VERSION = 0x00010002
_LAYOUT = struct.Struct(">8sQIIIB")


@dataclass(frozen=True)
class Batmap:
    """A parsed batmap; ``bits`` is the raw bit array (``size_sectors`` sectors)."""

    header_offset: int
    bits: bytes

    @property
    def offset(self) -> int:
        """Where the bits are: the sector right after the batmap header."""
        return self.header_offset + SECTOR

    @property
    def size_sectors(self) -> int:
        return len(self.bits) // SECTOR

    def is_full(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (0x80 >> (index & 7)))

    def pack(self) -> bytes:
        """Header sector followed by the bits."""
        head = bytearray(SECTOR)
        _LAYOUT.pack_into(
            head,
            0,
            BATMAP_COOKIE,
            self.offset,
            self.size_sectors,
            BATMAP_VERSION,
            batmap_checksum(self.bits),
            0,
        )
        return bytes(head) + self.bits

    @classmethod
    def build(cls, header_offset: int, block_count: int, full_blocks: list[int]) -> Batmap:
        bits = bytearray(round_up(ceil_div(block_count, 8)))
        for index in full_blocks:
            bits[index >> 3] |= 0x80 >> (index & 7)
        return cls(header_offset, bytes(bits))


def batmap_checksum(bits: bytes) -> int:
    return ~sum(bits) & 0xFFFFFFFF


def sectors_for(block_count: int) -> int:
    """Sectors of bits a batmap needs for ``block_count`` blocks."""
    return round_up(ceil_div(block_count, 8)) // SECTOR


def parse_batmap_header(raw: bytes) -> tuple[int, int, int, int] | None:
    """``(offset, size_sectors, version, checksum)`` if ``raw`` starts with a batmap header."""
    if raw[:8] != BATMAP_COOKIE:
        return None
    _cookie, offset, size, version, stored, _marker = _LAYOUT.unpack_from(raw)
    return offset, size, version, stored


def describe_cookie(raw: bytes) -> str:
    return printable(raw[:8])
