"""blktap's batmap: one bit per block meaning "every sector of this block is present".

It follows the BAT (header sector with cookie ``tdbatmap``, then the bits, MSB first) and blktap
expects it in every file whose creator is ``tap`` version 1.2 or later (docs/vhd.md §4.4,
§12.1). Every file xoweb writes or rewrites says ``tap`` 1.3 and carries one. A set bit is a
promise that the block's bitmap is full; a clear bit promises nothing, so a batmap may
under-claim (a merge marks only the blocks it checked) but never over-claim. It is the only
redundancy the format offers for bitmaps: a flipped bitmap byte in a block the batmap marks
full is detected instead of silently reading zeros or the parent's data. Readers that ignore
it (qemu, libvhdi) are unaffected.

blktap sums only the first ``map_bytes(current size)`` bytes of the bits for the checksum (it
assumes 2 MiB blocks); xoweb computes the checksum the same way and never sets a bit beyond
them (``markable``), so both definitions of the sum agree on every file it writes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .fields import BATMAP_COOKIE, SECTOR, ceil_div, printable, round_up

BATMAP_VERSION = 0x00010002
#: blktap's first batmap version, whose checksum summed signed bytes.
BATMAP_VERSION_1_1 = 0x00010001
_LAYOUT = struct.Struct(">8sQIIIB")


@dataclass(frozen=True)
class Batmap:
    """A parsed batmap; ``bits`` is the raw bit array (``size_sectors`` sectors)."""

    header_offset: int
    bits: bytes
    version: int = BATMAP_VERSION

    @property
    def offset(self) -> int:
        """Where the bits are: the sector right after the batmap header."""
        return self.header_offset + SECTOR

    @property
    def size_sectors(self) -> int:
        return len(self.bits) // SECTOR

    @property
    def end(self) -> int:
        return self.offset + len(self.bits)

    def is_full(self, index: int) -> bool:
        byte = index >> 3
        return byte < len(self.bits) and bool(self.bits[byte] & (0x80 >> (index & 7)))

    def pack(self, current_size: int) -> bytes:
        """Header sector followed by the bits, checksummed as blktap does for this disk size."""
        head = bytearray(SECTOR)
        _LAYOUT.pack_into(
            head,
            0,
            BATMAP_COOKIE,
            self.offset,
            self.size_sectors,
            BATMAP_VERSION,
            batmap_checksum(self.bits, current_size),
            0,
        )
        return bytes(head) + self.bits

    @classmethod
    def build(
        cls, header_offset: int, block_count: int, full_blocks: list[int], current_size: int
    ) -> Batmap:
        """A batmap for ``block_count`` BAT entries marking ``full_blocks`` (within reach)."""
        bits = bytearray(sectors_for(block_count) * SECTOR)
        mark(bits, full_blocks, current_size)
        return cls(header_offset, bytes(bits))


def mark(bits: bytearray, indices: list[int], current_size: int) -> None:
    """Set the bits of ``indices`` that blktap's checksum covers (``markable``)."""
    limit = min(markable(current_size), len(bits) * 8)
    for index in indices:
        if index < limit:
            bits[index >> 3] |= 0x80 >> (index & 7)


def map_bytes(current_size: int) -> int:
    """Bytes of bits blktap reads and checksums for a disk of ``current_size`` bytes.

    libvhd's ``vhd_read_batmap_map``: ``current_size >> 24`` (one bit per 2 MiB block, eight
    blocks a byte) rounded up to a sector, at least one.
    """
    return max(1, ceil_div(current_size >> 24, SECTOR)) * SECTOR


def markable(current_size: int) -> int:
    """Blocks whose batmap bit lies inside ``map_bytes``: only those may be marked full."""
    return map_bytes(current_size) * 8


def batmap_checksum(bits: bytes, current_size: int, version: int = BATMAP_VERSION) -> int:
    """blktap's checksum: one's complement of the byte sum of the first ``map_bytes``."""
    covered = bits[: map_bytes(current_size)]
    total = sum(covered)
    if version == BATMAP_VERSION_1_1:  # summed as signed chars
        total -= 256 * sum(1 for byte in covered if byte >= 0x80)
    return ~total & 0xFFFFFFFF


def whole_checksum(bits: bytes) -> int:
    """The sum over every byte of the bits (what xoweb wrote before it followed blktap)."""
    return ~sum(bits) & 0xFFFFFFFF


def sectors_for(block_count: int) -> int:
    """Sectors of bits a batmap needs for ``block_count`` blocks."""
    return round_up(ceil_div(block_count, 8)) // SECTOR


def slot_bytes(block_count: int) -> int:
    """Bytes a batmap takes after the BAT: its header sector and its bits."""
    return SECTOR + sectors_for(block_count) * SECTOR


def parse_batmap_header(raw: bytes) -> tuple[int, int, int, int] | None:
    """``(offset, size_sectors, version, checksum)`` if ``raw`` starts with a batmap header."""
    if raw[:8] != BATMAP_COOKIE:
        return None
    _cookie, offset, size, version, stored, _marker = _LAYOUT.unpack_from(raw)
    return offset, size, version, stored


def describe_cookie(raw: bytes) -> str:
    return printable(raw[:8])
