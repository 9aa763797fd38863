"""Independent VHD checks for the tests: a struct-level reader written from vhd.md (not from
xapisim's code) and identity rewriting for pyvhdi (docs/vhd.md §11.3); qemu-img is in
tests/qemu_img.py."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import pyvhdi


@dataclass
class VhdLayout:
    creator: bytes
    creator_version: int
    host_os: int
    timestamp: int
    features: int
    disk_type: int
    current_size: int
    original_size: int
    unique_id: bytes
    table_offset: int
    max_entries: int
    block_size: int
    parent_uuid: bytes
    parent_name: str
    locator0: tuple[int, int, int, int, int]  # code, space, length, reserved, offset
    bat: list[int]
    footer_at_start: bytes
    footer_at_end: bytes


def ones_complement(data: bytes) -> int:
    return (~sum(data)) & 0xFFFFFFFF


def read_layout(data: bytes) -> VhdLayout:
    head, tail = data[:512], data[-512:]
    assert head[:8] == b"conectix"
    assert struct.unpack_from(">I", head, 64)[0] == ones_complement(
        head[:64] + bytes(4) + head[68:]
    )
    header = data[512:1536]
    assert header[:8] == b"cxsparse"
    assert struct.unpack_from(">I", header, 36)[0] == ones_complement(
        header[:36] + bytes(4) + header[40:]
    )
    table_offset, _, max_entries, block_size = struct.unpack_from(">QIII", header, 16)
    bat = list(struct.unpack_from(f">{max_entries}I", data, table_offset))
    return VhdLayout(
        creator=head[28:32],
        creator_version=struct.unpack_from(">I", head, 32)[0],
        host_os=struct.unpack_from(">I", head, 36)[0],
        timestamp=struct.unpack_from(">I", head, 24)[0],
        features=struct.unpack_from(">I", head, 8)[0],
        disk_type=struct.unpack_from(">I", head, 60)[0],
        original_size=struct.unpack_from(">Q", head, 40)[0],
        current_size=struct.unpack_from(">Q", head, 48)[0],
        unique_id=head[68:84],
        table_offset=table_offset,
        max_entries=max_entries,
        block_size=block_size,
        parent_uuid=header[40:56],
        parent_name=header[64:576].decode("utf-16-be").rstrip("\x00"),
        locator0=struct.unpack_from(">IIIIQ", header, 576),
        bat=bat,
        footer_at_start=head,
        footer_at_end=tail,
    )


def allocated_blocks(layout: VhdLayout) -> list[int]:
    return [index for index, offset in enumerate(layout.bat) if offset != 0xFFFFFFFF]


def set_footer_uuid(path: Path, unique_id: bytes) -> None:
    """Give a VHD file another footer UUID (both copies), fixing the checksums."""
    data = bytearray(path.read_bytes())
    for start in (0, len(data) - 512):
        footer = bytearray(data[start : start + 512])
        footer[68:84] = unique_id
        footer[64:68] = bytes(4)
        footer[64:68] = struct.pack(">I", ones_complement(bytes(footer)))
        data[start : start + 512] = footer
    path.write_bytes(bytes(data))


def pyvhdi_read(path: Path, parent: Path | None = None) -> bytes:
    """The whole virtual content through libvhdi, with an explicit parent for a delta."""
    handle = pyvhdi.file()
    handle.open(str(path))
    opened = [handle]
    if parent is not None:
        base = pyvhdi.file()
        base.open(str(parent))
        opened.append(base)
        handle.set_parent(base)
    try:
        return handle.read_buffer_at_offset(handle.media_size, 0)
    finally:
        for item in opened:
            item.close()
