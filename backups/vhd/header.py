"""The 1024-byte dynamic disk header and its parent locators (docs/vhd.md §3).

The header says where the BAT is, how big blocks are and, for a differencing disk, which
parent it depends on: by UUID (authoritative), time stamp, UTF-16BE name and up to eight
locators whose payload (a path) lives elsewhere in the file.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid as uuidlib
from dataclasses import dataclass, field
from urllib.parse import unquote

from .errors import VhdFormatError
from .fields import (
    DEFAULT_BLOCK_SIZE,
    HEADER_COOKIE,
    MAX_DISK_SIZE,
    NO_OFFSET,
    SECTOR,
    checksum,
    framing_problems,
)

HEADER_SIZE = 1024
NIL_UUID = uuidlib.UUID(int=0)
_LAYOUT = struct.Struct(">8sQQIIII16sII512s")
_LOCATOR = struct.Struct(">IIIIQ")
_LOCATORS_OFFSET = 576
_CHECKSUM_OFFSET = 36
_VERSION = 0x00010000

#: Platform codes of parent locators (docs/vhd.md §3).
W2RU = 0x57327275  # relative Windows path, UTF-16LE
W2KU = 0x57326B75  # absolute Windows path, UTF-16LE (XO stores a relative name here)
MACX = 0x4D616358  # file URL, UTF-8
PLATFORM_NAMES = {W2RU: "W2ru", W2KU: "W2ku", MACX: "MacX", 0x57693272: "Wi2r", 0x5769326B: "Wi2k"}


@dataclass(frozen=True)
class ParentLocator:
    """One parent locator entry; its payload lives at ``data_offset`` in the file."""

    code: int
    data_space: int
    data_length: int
    data_offset: int

    @property
    def space_bytes(self) -> int:
        """Reserved bytes: the spec says sectors, Microsoft writes bytes; XAPI's rule decides."""
        return self.data_space * SECTOR if self.data_space < SECTOR else self.data_space

    @property
    def platform(self) -> str:
        return PLATFORM_NAMES.get(self.code, f"0x{self.code:08x}")

    def decode(self, payload: bytes) -> str | None:
        """The path a locator payload holds, or None for platforms that hold no path."""
        payload = payload[: self.data_length]
        if self.code in (W2RU, W2KU):
            return payload.decode("utf-16-le", errors="replace").rstrip("\0")
        if self.code == MACX:
            text = payload.decode("utf-8", errors="replace").rstrip("\0")
            if text.startswith("file://"):
                text = text[len("file://") :]
            return unquote(text)
        return None


@dataclass(frozen=True)
class Header:
    """A parsed dynamic header. ``pack`` recomputes the checksum."""

    table_offset: int
    max_table_entries: int
    block_size: int = DEFAULT_BLOCK_SIZE
    parent_uuid: uuidlib.UUID = NIL_UUID
    parent_timestamp: int = 0
    parent_name: str = ""
    locators: tuple[ParentLocator, ...] = field(default_factory=tuple)
    data_offset: int = NO_OFFSET
    version: int = _VERSION

    def pack(self) -> bytes:
        raw = bytearray(HEADER_SIZE)
        name = self.parent_name.encode("utf-16-be")
        if len(name) > 512:
            raise VhdFormatError(
                f"parent name {self.parent_name!r} is {len(name)} bytes in UTF-16, at most 512"
            )
        _LAYOUT.pack_into(
            raw,
            0,
            HEADER_COOKIE,
            self.data_offset,
            self.table_offset,
            self.version,
            self.max_table_entries,
            self.block_size,
            0,
            self.parent_uuid.bytes,
            self.parent_timestamp,
            0,
            name,
        )
        for slot, locator in enumerate(self.locators[:8]):
            _LOCATOR.pack_into(
                raw,
                _LOCATORS_OFFSET + 24 * slot,
                locator.code,
                locator.data_space,
                locator.data_length,
                0,
                locator.data_offset,
            )
        struct.pack_into(">I", raw, _CHECKSUM_OFFSET, checksum(raw, _CHECKSUM_OFFSET))
        return bytes(raw)

    def replace(self, **changes: object) -> Header:
        return dataclasses.replace(self, **changes)

    @property
    def bat_bytes(self) -> int:
        """Size of the BAT on disk: 4 bytes an entry, rounded up to a sector."""
        return -(-self.max_table_entries * 4 // SECTOR) * SECTOR

    @classmethod
    def parse(cls, raw: bytes, where: str) -> Header:
        problems = header_problems(raw)
        if problems:
            raise VhdFormatError(f"{where}: {problems[0]}")
        return cls.unpack(raw)

    @classmethod
    def unpack(cls, raw: bytes) -> Header:
        (
            _cookie,
            data_offset,
            table_offset,
            version,
            max_entries,
            block_size,
            _checksum,
            parent_uuid,
            parent_timestamp,
            _reserved,
            name,
        ) = _LAYOUT.unpack_from(raw)
        locators = []
        for slot in range(8):
            code, space, length, _reserved, offset = _LOCATOR.unpack_from(
                raw, _LOCATORS_OFFSET + 24 * slot
            )
            if code:
                locators.append(ParentLocator(code, space, length, offset))
        return cls(
            table_offset=table_offset,
            max_table_entries=max_entries,
            block_size=block_size,
            parent_uuid=uuidlib.UUID(bytes=parent_uuid),
            parent_timestamp=parent_timestamp,
            parent_name=name.decode("utf-16-be", errors="replace").split("\0", 1)[0],
            locators=tuple(locators),
            data_offset=data_offset,
            version=version,
        )


def header_problems(raw: bytes) -> list[str]:
    """Every reason ``raw`` is not a usable dynamic header."""
    problems, stop = framing_problems(
        raw, name="header", size=HEADER_SIZE, cookie=HEADER_COOKIE, checksum_offset=_CHECKSUM_OFFSET
    )
    if stop:
        return problems
    raw = bytes(raw[:HEADER_SIZE])
    version = struct.unpack_from(">I", raw, 24)[0]
    if version != _VERSION:
        problems.append(f"header version is 0x{version:08x}, expected 0x00010000")
    table_offset = struct.unpack_from(">Q", raw, 16)[0]
    if table_offset % SECTOR or table_offset < SECTOR:
        problems.append(f"header table offset {table_offset} is not a sector offset")
    block_size = struct.unpack_from(">I", raw, 32)[0]
    if block_size < 8 * SECTOR or block_size & (block_size - 1):
        problems.append(
            f"header block size {block_size} is not a power of two of at least 4096 bytes"
        )
    entries = struct.unpack_from(">I", raw, 28)[0]
    if block_size and entries * block_size > 2 * MAX_DISK_SIZE:
        # Twice the limit leaves room for tools that reserve entries for growth; beyond, the
        # field is garbage, and a stream parser must not try to read a gigantic BAT.
        problems.append(
            f"header max table entries {entries} with blocks of {block_size} bytes address "
            f"more than the format's 2 TiB limit"
        )
    return problems
