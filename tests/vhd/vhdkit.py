"""Test helpers written from docs/vhd.md alone, independent of backups.vhd's code.

``build_vhd`` lays out VHD bytes with ``struct`` (any creator, BAT offset, bitmap), so files
in XAPI's layout, with partial bitmaps or with odd metadata can be made without our writer;
a ``tap`` 1.3 file gets blktap's batmap as blktap writes it (docs/vhd.md §4.4, §12.1).
``reference_read`` is the plain sector-by-sector reader of docs/vhd.md §4.3 and §7: for each
sector, the first layer whose BAT has the block and whose bitmap bit is set, else zero. It is
the oracle for partial bitmaps, which libvhdi misreads (docs/vhd.md §11.2).
"""

from __future__ import annotations

import struct
import uuid as uuidlib
from pathlib import Path

SECTOR = 512
FULL = b"\xff" * 512
UNUSED = 0xFFFFFFFF


def _checksum(raw: bytearray, at: int) -> None:
    struct.pack_into(">I", raw, at, 0)
    struct.pack_into(">I", raw, at, ~sum(raw) & 0xFFFFFFFF)


TAP_1_3 = 0x00010003


def chs(size: int) -> tuple[int, int, int]:
    """Cylinders, heads, sectors per track: the specification's appendix, written out."""
    total = min(max(size // SECTOR, 1), 65535 * 16 * 255)
    if total >= 65535 * 16 * 63:
        return total // 255 // 16, 16, 255
    per_track, heads = 17, max(4, (total // 17 + 1023) // 1024)
    if total // 17 >= heads * 1024 or heads > 16:
        per_track, heads = 31, 16
    if total // per_track >= heads * 1024:
        per_track, heads = 63, 16
    return total // per_track // heads, heads, per_track


def pack_footer(
    size: int,
    disk_type: int,
    unique: uuidlib.UUID,
    creator: bytes = b"caml",
    creator_version: int | None = None,
    data_offset: int = 512,
    timestamp: int = 0,
    geometry: tuple[int, int, int] | None = None,
) -> bytes:
    """A footer; the creator version defaults to blktap's 1.3 for ``tap``, else XAPI's 1."""
    if creator_version is None:
        creator_version = TAP_1_3 if creator == b"tap\0" else 1
    raw = bytearray(512)
    raw[0:8] = b"conectix"
    struct.pack_into(">IIQI", raw, 8, 2, 0x00010000, data_offset, timestamp)
    raw[28:32] = creator
    struct.pack_into(">I", raw, 32, creator_version)
    struct.pack_into(">QQ", raw, 40, size, size)
    struct.pack_into(">HBB", raw, 56, *(geometry or chs(size)))
    struct.pack_into(">I", raw, 60, disk_type)
    raw[68:84] = unique.bytes
    _checksum(raw, 64)
    return bytes(raw)


def batmap_bytes(size: int, entries: int, full: list[int], offset: int) -> bytes:
    """blktap's batmap for a BAT of ``entries`` at ``offset``: header sector and bits.

    The checksum covers what libvhd reads, ``size >> 24`` bytes rounded up to a sector.
    """
    map_bytes = (entries + 7) // 8
    bits = bytearray(max(1, (map_bytes + SECTOR - 1) // SECTOR) * SECTOR)
    covered = max(1, ((size >> 24) + SECTOR - 1) // SECTOR) * SECTOR
    for index in full:
        if index < covered * 8:
            bits[index >> 3] |= 0x80 >> (index & 7)
    head = bytearray(SECTOR)
    head[0:8] = b"tdbatmap"
    checksum = ~sum(bits[:covered]) & 0xFFFFFFFF
    struct.pack_into(">QIII", head, 8, offset + SECTOR, len(bits) // SECTOR, 0x00010002, checksum)
    return bytes(head + bits)


W2KU, W2RU, MACX = 0x57326B75, 0x57327275, 0x4D616358


def build_vhd(
    size: int,
    blocks: dict[int, tuple[bytes, bytes]],
    *,
    block_size: int = 2 * 1024 * 1024,
    creator: bytes = b"caml",
    creator_version: int | None = None,
    table_offset: int = 2048,
    unique: uuidlib.UUID | None = None,
    parent_uuid: uuidlib.UUID | None = None,
    parent_name: str = "",
    macx_locator: bool = False,
    locators: list[tuple[int, bytes]] = (),
    batmap: bool | None = None,
    geometry: tuple[int, int, int] | None = None,
) -> bytes:
    """VHD bytes in XAPI's stream layout by default (docs/vhd.md §5.1): blocks after the BAT.

    ``blocks`` maps an index to ``(bitmap, data)``; the bitmap is padded to a sector here.
    ``macx_locator`` adds XAPI's empty ``MacX`` entry pointing at offset 1536; ``locators``
    adds ``(code, payload)`` entries whose payloads follow the BAT (and the batmap). A batmap
    (marking the blocks whose bitmap is full) is written for ``tap`` 1.2 and later unless
    ``batmap`` says otherwise.
    """
    unique = unique or uuidlib.uuid4()
    entries = -(-size // block_size)
    spb = block_size // SECTOR
    bitmap_bytes = (spb + 7) // 8
    bitmap_size = (bitmap_bytes + SECTOR - 1) // SECTOR * SECTOR
    disk_type = 4 if parent_uuid else 3
    footer = pack_footer(size, disk_type, unique, creator, creator_version, geometry=geometry)
    version = struct.unpack_from(">I", footer, 32)[0]
    if batmap is None:
        batmap = creator == b"tap\0" and version >= 0x00010002
    bat_bytes = -(-entries * 4 // SECTOR) * SECTOR
    cursor = table_offset + bat_bytes
    full = [index for index, (bitmap, _data) in blocks.items() if bitmap == FULL[: len(bitmap)]]
    extra = batmap_bytes(size, entries, full, cursor) if batmap else b""
    cursor += len(extra)
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    struct.pack_into(
        ">QQIII", header, 8, 0xFFFFFFFFFFFFFFFF, table_offset, 0x00010000, entries, block_size
    )
    if parent_uuid:
        header[40:56] = parent_uuid.bytes
        name = parent_name.encode("utf-16-be")
        header[64 : 64 + len(name)] = name
    slots = [(MACX, 1, 0, 1536)] if macx_locator else []
    for code, payload in locators:
        space = max(1, -(-len(payload) // SECTOR))
        slots.append((code, space, len(payload), cursor))
        extra += payload + bytes(space * SECTOR - len(payload))
        cursor += space * SECTOR
    for slot, (code, space, length, offset) in enumerate(slots):
        struct.pack_into(">IIIIQ", header, 576 + 24 * slot, code, space, length, 0, offset)
    _checksum(header, 36)
    out = bytearray(footer + header)
    out += bytes(table_offset - len(out))
    bat = [UNUSED] * (bat_bytes // 4)
    for index in sorted(blocks):
        bat[index] = cursor // SECTOR
        cursor += bitmap_size + block_size
    out += struct.pack(f">{len(bat)}I", *bat) + extra
    for index in sorted(blocks):
        bitmap, data = blocks[index]
        assert len(data) == block_size
        out += bitmap + bytes(bitmap_size - len(bitmap)) + data
    return bytes(out + footer)


def _parse(path: Path) -> dict:
    raw = path.read_bytes()
    footer = raw[-512:]
    assert footer[:8] == b"conectix"
    size = struct.unpack_from(">Q", footer, 48)[0]
    disk_type = struct.unpack_from(">I", footer, 60)[0]
    info = {"raw": raw, "size": size, "type": disk_type}
    if disk_type == 2:
        return info
    data_offset = struct.unpack_from(">Q", footer, 16)[0]
    header = raw[data_offset : data_offset + 1024]
    table = struct.unpack_from(">Q", header, 16)[0]
    entries, block_size = struct.unpack_from(">II", header, 28)
    info["block_size"] = block_size
    info["bat"] = struct.unpack_from(f">{entries}I", raw, table)
    return info


def reference_read(paths: list[Path]) -> bytes:
    """The raw disk of a chain given newest first, sector by sector."""
    layers = [_parse(Path(path)) for path in paths]
    size = layers[0]["size"]
    out = bytearray(size)
    for sector in range(size // SECTOR):
        for layer in layers:
            if layer["type"] == 2:
                start = sector * SECTOR
                out[start : start + SECTOR] = layer["raw"][start : start + SECTOR]
                break
            spb = layer["block_size"] // SECTOR
            block, within = divmod(sector, spb)
            if block >= len(layer["bat"]) or layer["bat"][block] == UNUSED:
                continue
            base = layer["bat"][block] * SECTOR
            if not layer["raw"][base + (within >> 3)] & (0x80 >> (within & 7)):
                continue
            bitmap_size = -(-(spb // 8) // SECTOR) * SECTOR
            start = base + bitmap_size + within * SECTOR
            out[sector * SECTOR : (sector + 1) * SECTOR] = layer["raw"][start : start + SECTOR]
            break
    return bytes(out)


class TrickleReader:
    """A non-seekable body that returns at most ``step`` bytes a read, like a socket."""

    def __init__(self, data: bytes, step: int = 65536 + 7) -> None:
        self.data = memoryview(data)
        self.position = 0
        self.step = step

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = len(self.data)
        size = min(size, self.step)
        chunk = bytes(self.data[self.position : self.position + size])
        self.position += len(chunk)
        return chunk
