"""The 512-byte footer: identity, size and type of a VHD (docs/vhd.md §2).

It sits at the end of every VHD and, for dynamic and differencing disks, also at offset 0.
``Footer.parse`` refuses anything that is not exactly a valid footer; ``footer_problems`` lists
every fault so that ``check`` can report them all.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid as uuidlib
from dataclasses import dataclass

from .errors import VhdFormatError
from .fields import (
    CREATOR_TAP,
    FOOTER_COOKIE,
    MAX_DISK_SIZE,
    NO_OFFSET,
    SECTOR,
    TAP_CREATOR_VERSION,
    DiskType,
    blktap_geometry,
    checksum,
    framing_problems,
)

FOOTER_SIZE = 512
_LAYOUT = struct.Struct(">8sIIQI4sI4sQQHBBII16sBB")
_CHECKSUM_OFFSET = 64
_VERSION = 0x00010000


@dataclass(frozen=True)
class Footer:
    """A parsed footer. ``pack`` recomputes the checksum, so edited copies stay valid."""

    disk_type: DiskType
    current_size: int
    uuid: uuidlib.UUID
    timestamp: int = 0
    original_size: int | None = None
    data_offset: int = SECTOR
    creator_app: bytes = CREATOR_TAP
    creator_version: int = TAP_CREATOR_VERSION
    creator_os: bytes = b"\0\0\0\0"
    features: int = 2
    version: int = _VERSION
    geometry: tuple[int, int, int] | None = None
    saved_state: int = 0
    hidden: int = 0

    def __post_init__(self) -> None:
        if self.original_size is None:
            object.__setattr__(self, "original_size", self.current_size)
        if self.geometry is None:
            object.__setattr__(self, "geometry", blktap_geometry(self.current_size))
        if self.disk_type == DiskType.FIXED and self.data_offset == SECTOR:
            object.__setattr__(self, "data_offset", NO_OFFSET)

    def pack(self) -> bytes:
        cylinders, heads, sectors = self.geometry
        raw = bytearray(FOOTER_SIZE)
        _LAYOUT.pack_into(
            raw,
            0,
            FOOTER_COOKIE,
            self.features,
            self.version,
            self.data_offset,
            self.timestamp,
            self.creator_app,
            self.creator_version,
            self.creator_os,
            self.original_size,
            self.current_size,
            cylinders,
            heads,
            sectors,
            int(self.disk_type),
            0,
            self.uuid.bytes,
            self.saved_state,
            self.hidden,
        )
        struct.pack_into(">I", raw, _CHECKSUM_OFFSET, checksum(raw, _CHECKSUM_OFFSET))
        return bytes(raw)

    def replace(self, **changes: object) -> Footer:
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Footer:
        """Parse and validate; ``where`` names the file and offset in error messages."""
        problems = footer_problems(raw)
        if problems:
            raise VhdFormatError(f"{where}: {problems[0]}")
        return cls.unpack(raw)

    @classmethod
    def unpack(cls, raw: bytes) -> Footer:
        """Decode without validating (used after ``footer_problems`` said it is sound)."""
        (
            _cookie,
            features,
            version,
            data_offset,
            timestamp,
            creator_app,
            creator_version,
            creator_os,
            original_size,
            current_size,
            cylinders,
            heads,
            sectors,
            disk_type,
            _checksum,
            unique_id,
            saved_state,
            hidden,
        ) = _LAYOUT.unpack_from(raw)
        return cls(
            disk_type=DiskType(disk_type),
            current_size=current_size,
            uuid=uuidlib.UUID(bytes=unique_id),
            timestamp=timestamp,
            original_size=original_size,
            data_offset=data_offset,
            creator_app=creator_app,
            creator_version=creator_version,
            creator_os=creator_os,
            features=features,
            version=version,
            geometry=(cylinders, heads, sectors),
            saved_state=saved_state,
            hidden=hidden,
        )


def footer_problems(raw: bytes) -> list[str]:
    """Every reason ``raw`` is not a usable footer, as sentences naming the field."""
    problems, stop = framing_problems(
        raw,
        name="footer",
        size=FOOTER_SIZE,
        cookie=FOOTER_COOKIE,
        checksum_offset=_CHECKSUM_OFFSET,
        cookie_note=" (not a VHD footer)",
    )
    if stop:
        return problems
    raw = bytes(raw[:FOOTER_SIZE])
    version = struct.unpack_from(">I", raw, 12)[0]
    if version != _VERSION:
        problems.append(f"footer file format version is 0x{version:08x}, expected 0x00010000")
    disk_type = struct.unpack_from(">I", raw, 60)[0]
    if disk_type not in DiskType._value2member_map_:
        problems.append(
            f"footer disk type is {disk_type}, expected 2 (fixed), 3 (dynamic) or 4 (differencing)"
        )
    current_size = struct.unpack_from(">Q", raw, 48)[0]
    if current_size % SECTOR:
        problems.append(f"footer current size {current_size} is not a multiple of 512")
    if current_size > MAX_DISK_SIZE:
        problems.append(
            f"footer current size {current_size} is above the format's 2 TiB limit "
            f"({MAX_DISK_SIZE})"
        )
    data_offset = struct.unpack_from(">Q", raw, 16)[0]
    if disk_type in (DiskType.DYNAMIC, DiskType.DIFFERENCING) and (
        data_offset == NO_OFFSET or data_offset % SECTOR or data_offset < SECTOR
    ):
        problems.append(
            f"footer data offset is 0x{data_offset:x}, expected the sector offset of the "
            "dynamic header (normally 512)"
        )
    return problems
