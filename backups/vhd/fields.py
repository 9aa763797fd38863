"""Low-level field codecs shared by the footer, the header and the batmap.

The format is big-endian throughout, checksums are the one's complement of a byte sum, times are
seconds since 2000-01-01 UTC and geometry follows the CHS algorithm of the specification's
appendix (docs/vhd.md §1, §2).
"""

from __future__ import annotations

import enum
import time

SECTOR = 512
DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
#: 32-bit BAT entries count 512-byte sectors: the format cannot address more than 2 TiB.
MAX_DISK_SIZE = 2 * 1024**4
UNUSED = 0xFFFFFFFF
NO_OFFSET = 0xFFFFFFFFFFFFFFFF
VHD_EPOCH = 946684800

FOOTER_COOKIE = b"conectix"
HEADER_COOKIE = b"cxsparse"
BATMAP_COOKIE = b"tdbatmap"

CREATOR_TAP = b"tap\0"
CREATOR_XAPI = b"caml"
#: blktap's VHD_CURRENT_VERSION 1.3: big-endian bitmaps and a batmap.
TAP_CREATOR_VERSION = 0x00010003


class DiskType(enum.IntEnum):
    """Disk types as XAPI, blktap, vhd-lib and libvhdi number them."""

    FIXED = 2
    DYNAMIC = 3
    DIFFERENCING = 4


def checksum(raw: bytes | bytearray | memoryview, field_offset: int) -> int:
    """One's complement of the byte sum of ``raw`` with the 4-byte checksum field taken as 0."""
    total = sum(raw) - sum(raw[field_offset : field_offset + 4])
    return ~total & 0xFFFFFFFF


def vhd_time(unix_time: float | None = None) -> int:
    """Seconds since 2000-01-01 UTC (the VHD epoch) for a unix time, default now."""
    if unix_time is None:
        unix_time = time.time()
    return max(0, int(unix_time) - VHD_EPOCH) & 0xFFFFFFFF


def unix_time(vhd_seconds: int) -> int:
    """Unix time for a VHD time stamp."""
    return vhd_seconds + VHD_EPOCH


def chs_geometry(size: int) -> tuple[int, int, int]:
    """Cylinders, heads and sectors per track for a disk size (the specification's appendix)."""
    total = min(size // SECTOR, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        sectors, heads = 255, 16
        cyl_heads = total // sectors
    else:
        sectors = 17
        cyl_heads = total // sectors
        heads = max(4, (cyl_heads + 1023) // 1024)
        if cyl_heads >= heads * 1024 or heads > 16:
            sectors, heads = 31, 16
            cyl_heads = total // sectors
        if cyl_heads >= heads * 1024:
            sectors, heads = 63, 16
            cyl_heads = total // sectors
    return cyl_heads // heads, heads, sectors


def blktap_geometry(size: int) -> tuple[int, int, int]:
    """The geometry blktap gives a disk of ``size`` bytes, and the largest it accepts.

    The specification's, except that libvhd counts sectors in 32 bits: a disk of exactly
    2 TiB has 2**32 sectors, which it counts as one (docs/vhd.md §12.2). Readers never take the
    size of a ``tap`` file from its geometry, so xoweb writes this one.
    """
    sectors = ((size + SECTOR - 1) // SECTOR) & 0xFFFFFFFF or 1
    return chs_geometry(sectors * SECTOR)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def round_up(value: int, unit: int = SECTOR) -> int:
    return ceil_div(value, unit) * unit


def printable(raw: bytes) -> str:
    """A cookie or creator as text for messages, with odd bytes escaped."""
    return repr(bytes(raw))[2:-1]


def framing_problems(
    raw: bytes, *, name: str, size: int, cookie: bytes, checksum_offset: int, cookie_note: str = ""
) -> tuple[list[str], bool]:
    """Size, cookie and checksum of a footer or header, and whether to check nothing more.

    A short or foreign structure stops the checks (its fields mean nothing); a bad checksum
    does not, so that every damaged field is still named.
    """
    if len(raw) < size:
        return [f"{name} is {len(raw)} bytes, expected {size} (file or stream truncated)"], True
    raw = bytes(raw[:size])
    if raw[:8] != cookie:
        found = printable(raw[:8])
        return [f"{name} cookie is '{found}', expected '{cookie.decode()}'{cookie_note}"], True
    stored = int.from_bytes(raw[checksum_offset : checksum_offset + 4], "big")
    computed = checksum(raw, checksum_offset)
    if stored != computed:
        message = f"{name} checksum is 0x{stored:08x}, computed 0x{computed:08x} ({name} corrupted)"
        return [message], False
    return [], False
