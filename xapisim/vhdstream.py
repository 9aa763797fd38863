"""The VHD stream of `/export_raw_vdi?format=vhd`, byte for byte as XAPI's vhd-tool writes it,
and the forward-only VHD reader `/import_raw_vdi` uses (docs/vhd.md §2-§5, docs/xapi.md §9.3-§9.4).

Layout written: footer copy (0) · dynamic header (512, table_offset 2048) · one zero sector
(room for the parent locator) · BAT · for each included block in ascending index a bitmap with
all bits set and the 2 MiB of data · footer. Creator `caml` v1, host OS 0, timestamp 0, a fresh
random footer UUID per export. This module knows nothing of HTTP or of the block store.
"""

from __future__ import annotations

import struct
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

BLOCK_SIZE = 2 * 1024 * 1024
SECTOR = 512
SECTORS_PER_BLOCK = BLOCK_SIZE // SECTOR
BITMAP_SIZE = SECTORS_PER_BLOCK // 8  # 512: one sector for a 2 MiB block
TABLE_OFFSET = 2048
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z
DYNAMIC, DIFFERENCING = 3, 4
MAX_VHD_SIZE = 2040 * 1024**3  # Constants.max_vhd_size: VDI_TOO_LARGE above
UNUSED = 0xFFFFFFFF
MACX = 0x4D616358


def checksum(data: bytes) -> int:
    return (~sum(data)) & 0xFFFFFFFF


def geometry(size: int) -> tuple[int, int, int]:
    """CHS from the size, the algorithm of the spec's appendix."""
    total = min(size // SECTOR, 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cth = total // spt
    else:
        spt = 17
        cth = total // spt
        heads = max((cth + 1023) // 1024, 4)
        if cth >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cth = total // spt
        if cth >= heads * 1024:
            spt, heads = 63, 16
            cth = total // spt
    return cth // heads, heads, spt


def footer(size: int, disk_type: int, unique_id: bytes) -> bytes:
    cylinders, heads, spt = geometry(size)
    fields = struct.pack(
        ">8sIIQI4sIIQQHBBII16sBB",
        b"conectix",
        2,  # features: the reserved bit that must be set
        0x00010000,
        512,  # data offset: the dynamic header
        0,  # timestamp: XAPI streams write 0
        b"caml",
        1,  # creator version
        0,  # creator host OS
        size,
        size,
        cylinders,
        heads,
        spt,
        disk_type,
        0,  # checksum, filled below
        unique_id,
        0,
        0,
    )
    data = fields + bytes(512 - len(fields))
    return data[:64] + struct.pack(">I", checksum(data)) + data[68:]


@dataclass(frozen=True)
class Parent:
    """What a delta's header says of its parent: the base VDI's on-SR VHD."""

    uuid: bytes
    mtime: float
    path: str


def header(size: int, parent: Parent | None) -> bytes:
    entries = (size + BLOCK_SIZE - 1) // BLOCK_SIZE
    parent_uuid = parent.uuid if parent else bytes(16)
    parent_time = max(0, int(parent.mtime) - VHD_EPOCH) if parent else 0
    name = parent.path.encode("utf-16-be")[:512] if parent else b""
    data = bytearray(1024)
    struct.pack_into(
        ">8sQQIII I16sII",
        data,
        0,
        b"cxsparse",
        0xFFFFFFFFFFFFFFFF,
        TABLE_OFFSET,
        0x00010000,
        entries,
        BLOCK_SIZE,
        0,
        parent_uuid,
        parent_time,
        0,
    )
    data[64 : 64 + len(name)] = name
    if parent:
        # Locator 0: MacX file URL at 1536, one sector; the sector itself is streamed as zeros.
        url_length = len(("file://" + parent.path).encode())
        struct.pack_into(">IIIIQ", data, 576, MACX, 1, url_length, 0, 1536)
    struct.pack_into(">I", data, 36, checksum(bytes(data)))
    return bytes(data)


def stream_size(size: int, block_total: int) -> int:
    entries = (size + BLOCK_SIZE - 1) // BLOCK_SIZE
    bat = (entries * 4 + SECTOR - 1) // SECTOR * SECTOR
    return TABLE_OFFSET + bat + block_total * (BITMAP_SIZE + BLOCK_SIZE) + 512


def export_stream(
    size: int,
    blocks: list[int],
    read_block: Callable[[int], bytes] | None,
    parent: Parent | None = None,
) -> Iterator[bytes | int]:
    """Yield the VHD stream in pieces of at most one block (memory stays bounded).

    With `read_block=None` a block's 2 MiB of data is yielded as its index instead, so the
    sender can copy it from the block file without passing through Python (sendfile)."""
    entries = (size + BLOCK_SIZE - 1) // BLOCK_SIZE
    unique_id = uuidlib.uuid4().bytes
    tail = footer(size, DIFFERENCING if parent else DYNAMIC, unique_id)
    bat_bytes = (entries * 4 + SECTOR - 1) // SECTOR * SECTOR
    bat = bytearray(b"\xff" * bat_bytes)
    sector = (TABLE_OFFSET + bat_bytes) // SECTOR
    for index in blocks:
        struct.pack_into(">I", bat, index * 4, sector)
        sector += (BITMAP_SIZE + BLOCK_SIZE) // SECTOR
    yield tail + header(size, parent) + bytes(SECTOR) + bytes(bat)
    full_bitmap = b"\xff" * BITMAP_SIZE
    for index in blocks:
        yield full_bitmap
        yield index if read_block is None else read_block(index)
    yield tail


class VhdFormatError(ValueError):
    """The uploaded VHD cannot be applied (bad cookie, checksum, or layout)."""


@dataclass
class Footer:
    size: int
    disk_type: int
    data_offset: int
    unique_id: bytes


def parse_footer(data: bytes) -> Footer:
    if len(data) != 512 or data[:8] != b"conectix":
        raise VhdFormatError("no VHD footer (cookie 'conectix' missing)")
    stored = struct.unpack_from(">I", data, 64)[0]
    if stored != checksum(data[:64] + bytes(4) + data[68:]):
        raise VhdFormatError("VHD footer checksum mismatch")
    data_offset, _time, _creator, _version, _os, _orig, current = struct.unpack_from(
        ">QI4sIIQQ", data, 16
    )
    disk_type = struct.unpack_from(">I", data, 60)[0]
    return Footer(current, disk_type, data_offset, data[68:84])


def apply_vhd(
    read: Callable[[int], bytes],
    length: int | None,
    write: Callable[[int, bytes], None],
) -> int:
    """Apply a VHD read forward-only from `read(n)` (`length` bytes, or until `read` returns
    nothing when the length is unknown) as a patch.

    Steps, as vhd-tool's `serve_vhd_to_raw`: footer at 0, header at `data_offset`, BAT at
    `table_offset`, blocks in increasing file offset writing only sectors whose bitmap bit is
    set, then the footer in the last 512 bytes. Returns the number of sectors written.
    """
    position = 0

    def take(count: int) -> bytes:
        nonlocal position
        data = read(count)
        if len(data) != count:
            raise VhdFormatError(
                f"VHD stream ended at byte {position + len(data)}, expected {position + count}"
            )
        position += count
        return data

    def skip_to(offset: int) -> None:
        if offset < position:
            raise VhdFormatError(f"VHD layout is not forward-only (offset {offset} < {position})")
        while position < offset:
            take(min(1 << 20, offset - position))

    first = parse_footer(take(512))
    if first.disk_type not in (DYNAMIC, DIFFERENCING):
        raise VhdFormatError(f"unsupported VHD disk type {first.disk_type}")
    skip_to(first.data_offset)
    head = take(1024)
    if head[:8] != b"cxsparse":
        raise VhdFormatError("no dynamic header (cookie 'cxsparse' missing)")
    table_offset, _version, entries, block_size = struct.unpack_from(">QIII", head, 16)
    if block_size == 0 or block_size & (block_size - 1):
        raise VhdFormatError(f"block size {block_size} is not a power of two")
    skip_to(table_offset)
    bat = struct.unpack(f">{entries}I", take(entries * 4))
    sectors_per_block = block_size // SECTOR
    bitmap_size = (sectors_per_block // 8 + SECTOR - 1) // SECTOR * SECTOR
    written = 0
    order = sorted((offset, index) for index, offset in enumerate(bat) if offset != UNUSED)
    for offset, index in order:
        skip_to(offset * SECTOR)
        bitmap = take(bitmap_size)
        data = take(block_size)
        base = index * block_size
        if bitmap[: sectors_per_block // 8] == b"\xff" * (sectors_per_block // 8):
            write(base, data[: max(0, min(block_size, first.size - base))])
            written += sectors_per_block
            continue
        run_start = None
        for sector in range(sectors_per_block + 1):
            bit = sector < sectors_per_block and bitmap[sector >> 3] & (0x80 >> (sector & 7))
            if bit and run_start is None:
                run_start = sector
            elif not bit and run_start is not None:
                chunk = data[run_start * SECTOR : sector * SECTOR]
                offset_bytes = base + run_start * SECTOR
                if offset_bytes < first.size:
                    write(offset_bytes, chunk[: first.size - offset_bytes])
                written += sector - run_start
                run_start = None
    if length is not None:
        skip_to(length - 512)
        parse_footer(take(512))
        return written
    tail = b""
    while chunk := read(1 << 20):
        tail = (tail + chunk)[-512:]
    parse_footer(tail)
    return written
