"""Test helpers written from docs/vhd.md alone, independent of backups.vhd's code.

``build_vhd`` lays out VHD bytes with ``struct`` (any creator, BAT offset, bitmap), so files
in XAPI's layout, with partial bitmaps or with odd metadata can be made without our writer.
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


def pack_footer(
    size: int,
    disk_type: int,
    unique: uuidlib.UUID,
    creator: bytes = b"caml",
    creator_version: int = 1,
    data_offset: int = 512,
    timestamp: int = 0,
) -> bytes:
    raw = bytearray(512)
    raw[0:8] = b"conectix"
    struct.pack_into(">IIQI", raw, 8, 2, 0x00010000, data_offset, timestamp)
    raw[28:32] = creator
    struct.pack_into(">I", raw, 32, creator_version)
    struct.pack_into(">QQ", raw, 40, size, size)
    struct.pack_into(">HBB", raw, 56, 1024, 16, 63)
    struct.pack_into(">I", raw, 60, disk_type)
    raw[68:84] = unique.bytes
    _checksum(raw, 64)
    return bytes(raw)


def build_vhd(
    size: int,
    blocks: dict[int, tuple[bytes, bytes]],
    *,
    block_size: int = 2 * 1024 * 1024,
    creator: bytes = b"caml",
    table_offset: int = 2048,
    unique: uuidlib.UUID | None = None,
    parent_uuid: uuidlib.UUID | None = None,
    parent_name: str = "",
    macx_locator: bool = False,
) -> bytes:
    """VHD bytes in XAPI's stream layout by default (docs/vhd.md §5.1): blocks after the BAT.

    ``blocks`` maps an index to ``(bitmap, data)``; the bitmap is padded to a sector here.
    """
    unique = unique or uuidlib.uuid4()
    entries = -(-size // block_size)
    spb = block_size // SECTOR
    bitmap_bytes = (spb + 7) // 8
    bitmap_size = (bitmap_bytes + SECTOR - 1) // SECTOR * SECTOR
    disk_type = 4 if parent_uuid else 3
    footer = pack_footer(size, disk_type, unique, creator)
    header = bytearray(1024)
    header[0:8] = b"cxsparse"
    struct.pack_into(
        ">QQIII", header, 8, 0xFFFFFFFFFFFFFFFF, table_offset, 0x00010000, entries, block_size
    )
    if parent_uuid:
        header[40:56] = parent_uuid.bytes
        name = parent_name.encode("utf-16-be")
        header[64 : 64 + len(name)] = name
        if macx_locator:
            struct.pack_into(">IIIIQ", header, 576, 0x4D616358, 1, 0, 0, 1536)
    _checksum(header, 36)
    bat_bytes = -(-entries * 4 // SECTOR) * SECTOR
    out = bytearray(footer + header)
    out += bytes(table_offset - len(out))
    bat = [UNUSED] * (bat_bytes // 4)
    cursor = table_offset + bat_bytes
    for index in sorted(blocks):
        bat[index] = cursor // SECTOR
        cursor += bitmap_size + block_size
    out += struct.pack(f">{len(bat)}I", *bat)
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
