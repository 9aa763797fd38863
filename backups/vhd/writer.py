"""Write a dynamic or differencing VHD from blocks, strictly sequentially.

The block set is known before the first block arrives (an export stream's BAT says it), so the
whole layout is planned up front and the file is written front to back in one pass, which
lets the caller hash the bytes as they go (the hash is the file's SHA-256):

    footer copy · header · BAT (at 1536) · batmap · parent locators · blocks ascending · footer

The file is written under a temporary name in the same directory, flushed, re-opened and
validated, then renamed over the final name and the directory flushed: a crash leaves either
no file or a complete one. The creator is ``tap`` so that qemu-img trusts the size field
(docs/vhd.md §6), version 1.3 with blktap's batmap as blktap requires of that version (§12.1).
The batmap marks the blocks known in advance to be full — every block of a whole-block
stream — so a flipped bitmap byte there is caught; other blocks are left unmarked, which a
batmap allows.
"""

from __future__ import annotations

import os
import secrets
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .bat import Bat
from .batmap import Batmap, slot_bytes
from .bitmap import bitmap_size, first_partial_byte, full_bitmap, is_full
from .errors import VhdError, VhdFormatError
from .fields import (
    DEFAULT_BLOCK_SIZE,
    MAX_DISK_SIZE,
    SECTOR,
    DiskType,
    ceil_div,
    round_up,
    vhd_time,
)
from .fileio import OS_IO, NewFile, VhdIO, unlink_quietly
from .footer import Footer
from .header import W2KU, W2RU, Header, ParentLocator
from .stream import VhdStream

TABLE_OFFSET = 3 * SECTOR


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class ParentLink:
    """How a differencing file names its parent.

    ``name`` is the parent's path relative to the child's directory (normally its file name),
    so a chain moved to another folder still opens.
    """

    uuid: uuidlib.UUID
    name: str
    timestamp: int = 0


@dataclass(frozen=True)
class WrittenVhd:
    """What ``VhdWriter.close`` committed."""

    path: Path
    size: int
    blocks: int
    sha256: str | None


def locators_for(name: str, offset: int) -> tuple[tuple[ParentLocator, ...], bytes]:
    """Parent locators for a relative name and their payload bytes, laid out from ``offset``.

    ``W2ru`` is the spec's relative path; ``W2ku`` holds the same relative name because that
    is where Xen Orchestra puts it (``setUniqueParentLocator``).
    """
    locators, payload = [], b""
    for code in (W2RU, W2KU):
        data = name.encode("utf-16-le")
        space = round_up(max(len(data), 1))
        locators.append(ParentLocator(code, space, len(data), offset + len(payload)))
        payload += data + bytes(space - len(data))
    return tuple(locators), payload


class VhdLayout:
    """The bytes of a VHD planned up front: everything before the first block, the order and
    checks of the blocks, and the footer. Pure (no file), so one export can be encoded once and
    written to several places (the backup engine writes one stream to every remote).

    Steps: check the size and the block list; lay out footer copy, header, BAT at 1536, batmap
    and parent locators; give each block its offset in the order given.
    """

    def __init__(
        self,
        *,
        size: int,
        blocks: Iterable[int],
        uuid: uuidlib.UUID,
        parent: ParentLink | None = None,
        timestamp: int | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        whole_blocks: bool = True,
        full_blocks: Iterable[int] | None = None,
        name: str = "VHD",
    ) -> None:
        if size <= 0 or size % SECTOR or size > MAX_DISK_SIZE:
            raise VhdError(f"disk size {size} must be a positive multiple of 512 of at most 2 TiB")
        self.name = name
        self.block_size = block_size
        self.spb = block_size // SECTOR
        self.bitmap_size = bitmap_size(self.spb)
        self.whole_blocks = whole_blocks
        entries = ceil_div(size, block_size)
        self.indices = list(blocks)
        # Blocks the batmap promises full: every block when whole, else those the caller knows.
        self.full = set(self.indices if whole_blocks else full_blocks or ())
        if len(set(self.indices)) != len(self.indices):
            raise VhdError(f"{name}: the block list names a block twice")
        outside = [index for index in self.indices if not 0 <= index < entries]
        if outside:
            raise VhdError(
                f"{name}: block {outside[0]} is outside a disk of {size} bytes ({entries} blocks)"
            )
        self.footer = Footer(
            disk_type=DiskType.DIFFERENCING if parent else DiskType.DYNAMIC,
            current_size=size,
            uuid=uuid,
            timestamp=vhd_time() if timestamp is None else timestamp,
        )
        self.prefix = self._plan(entries, parent)
        self.footer_bytes = self.footer.pack()
        self.span = self.bitmap_size + self.block_size
        #: The exact length of the file.
        self.file_size = len(self.prefix) + len(self.indices) * self.span + len(self.footer_bytes)

    def _plan(self, entries: int, parent: ParentLink | None) -> bytes:
        """Lay out metadata and block offsets; return the bytes before the first block."""
        bat_bytes = round_up(entries * 4)
        cursor = TABLE_OFFSET + bat_bytes
        batmap = Batmap.build(cursor, entries, sorted(self.full), self.footer.current_size)
        cursor += slot_bytes(entries)
        locators, payload = (), b""
        if parent is not None:
            locators, payload = locators_for(parent.name, cursor)
            cursor += len(payload)
        header = Header(
            table_offset=TABLE_OFFSET,
            max_table_entries=entries,
            block_size=self.block_size,
            parent_uuid=parent.uuid if parent else uuidlib.UUID(int=0),
            parent_timestamp=parent.timestamp if parent else 0,
            parent_name=parent.name if parent else "",
            locators=locators,
        )
        bat = Bat.empty(entries)
        span = self.bitmap_size + self.block_size
        for position, index in enumerate(self.indices):
            bat.set(index, (cursor + position * span) // SECTOR)
        if (cursor + len(self.indices) * span) // SECTOR >= 0xFFFFFFFF:
            raise VhdError(f"{self.name}: blocks would lie beyond what the BAT can address")
        prefix = self.footer.pack() + header.pack() + bat.pack()
        prefix += batmap.pack(self.footer.current_size) + payload
        assert len(prefix) == cursor
        return prefix

    def block_bitmap(
        self, position: int, index: int, bitmap: bytes | memoryview | None, data: bytes | memoryview
    ) -> bytes | memoryview:
        """Check that block ``index`` may come at ``position``; return the bitmap to write
        (``None`` means full)."""
        if position >= len(self.indices) or self.indices[position] != index:
            expected = self.indices[position] if position < len(self.indices) else "none"
            raise VhdError(f"{self.name}: got block {index}, expected block {expected}")
        if len(data) != self.block_size:
            raise VhdError(
                f"{self.name}: block {index} has {len(data)} bytes of data, expected "
                f"{self.block_size}"
            )
        if bitmap is None:
            return full_bitmap(self.spb)
        if len(bitmap) != self.bitmap_size:
            raise VhdError(
                f"{self.name}: block {index} bitmap has {len(bitmap)} bytes, expected "
                f"{self.bitmap_size}"
            )
        if index in self.full and not is_full(bitmap, self.spb):
            byte, value = first_partial_byte(bitmap, self.spb)
            promise = (
                "this file is written with whole blocks"
                if self.whole_blocks
                else "the block was announced full"
            )
            raise VhdFormatError(
                f"{self.name}: block {index}: bitmap byte {byte} is 0x{value:02x}, but "
                f"{promise} (expected 0xff)"
            )
        return bitmap


class VhdWriter:
    """Sequential writer: ``write_block`` in the order of ``blocks``, then ``close``.

    Steps: plan the layout (``VhdLayout``); write footer copy, header, BAT, batmap and
    locators at once; append each block; write the footer; fsync; validate; rename; fsync the
    directory.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        size: int,
        blocks: Iterable[int],
        uuid: uuidlib.UUID,
        parent: ParentLink | None = None,
        timestamp: int | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        whole_blocks: bool = True,
        full_blocks: Iterable[int] | None = None,
        hasher: Hasher | None = None,
        validate: bool = True,
        io: VhdIO = OS_IO,
    ) -> None:
        self.path = Path(path)
        self.io = io
        self.layout = VhdLayout(
            size=size,
            blocks=blocks,
            uuid=uuid,
            parent=parent,
            timestamp=timestamp,
            block_size=block_size,
            whole_blocks=whole_blocks,
            full_blocks=full_blocks,
            name=str(self.path),
        )
        self.block_size = block_size
        self.whole_blocks = whole_blocks
        self.indices = self.layout.indices
        self.full = self.layout.full
        self.footer = self.layout.footer
        self.hasher = hasher
        self.validate = validate
        self._next = 0
        self._written = 0
        self.temp_path = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.partial")
        self.file: NewFile | None = io.create(self.temp_path)
        try:
            self._write(self.layout.prefix)
        except BaseException:
            self.abort()
            raise

    def _write(self, *chunks: bytes | memoryview) -> None:
        assert self.file is not None, "written after close or abort"
        self.file.write(*chunks)
        if self.hasher is not None:
            for chunk in chunks:
                self.hasher.update(chunk)
        self._written += sum(len(chunk) for chunk in chunks)

    @property
    def expected_blocks(self) -> list[int]:
        return self.indices

    def write_block(
        self, index: int, bitmap: bytes | memoryview | None, data: bytes | memoryview
    ) -> None:
        """Append block ``index`` (``bitmap`` None means full)."""
        bitmap = self.layout.block_bitmap(self._next, index, bitmap, data)
        self._write(bitmap, data)
        self._next += 1

    def close(self) -> WrittenVhd:
        """Write the footer, flush, validate, rename over the final name."""
        if self._next != len(self.indices):
            self.abort()
            raise VhdError(
                f"{self.path}: closed after {self._next} of {len(self.indices)} blocks; "
                "nothing was written"
            )
        try:
            self._write(self.layout.footer_bytes)
            assert self.file is not None
            self.file.fsync()
            self.file.close()
            self.file = None
            if self.validate:
                from .vhdfile import open_vhd

                open_vhd(self.temp_path).close()
            self.io.rename(self.temp_path, self.path)
            self.io.fsync_dir(self.path.parent)
        except BaseException:
            self.abort()
            raise
        digest = self.hasher.hexdigest() if self.hasher is not None else None
        return WrittenVhd(self.path, self._written, len(self.indices), digest)

    def abort(self) -> None:
        """Drop the temporary file (safe to call twice)."""
        if self.file is not None:
            self.file.close()
            self.file = None
        unlink_quietly(self.io, self.temp_path)

    def __enter__(self) -> VhdWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is not None:
            self.abort()


def write_vhd(
    path: str | os.PathLike,
    blocks: dict[int, tuple[bytes | None, bytes]],
    *,
    size: int,
    uuid: uuidlib.UUID | None = None,
    parent: ParentLink | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    timestamp: int | None = None,
    io: VhdIO = OS_IO,
) -> WrittenVhd:
    """Write a whole VHD from ``{index: (bitmap or None, data)}`` (tests, small tools).

    The batmap marks every block whose bitmap is full.
    """
    spb = block_size // SECTOR
    full = [
        index for index, (bitmap, _data) in blocks.items() if bitmap is None or is_full(bitmap, spb)
    ]
    writer = VhdWriter(
        path,
        size=size,
        blocks=sorted(blocks),
        uuid=uuid or uuidlib.uuid4(),
        parent=parent,
        block_size=block_size,
        whole_blocks=len(full) == len(blocks),
        full_blocks=full,
        timestamp=timestamp,
        io=io,
    )
    with writer:
        for index in writer.expected_blocks:
            bitmap, data = blocks[index]
            writer.write_block(index, bitmap, data)
        return writer.close()


def write_stream(
    stream: VhdStream,
    path: str | os.PathLike,
    *,
    uuid: uuidlib.UUID,
    parent: ParentLink | None = None,
    timestamp: int | None = None,
    hasher: Hasher | None = None,
    io: VhdIO = OS_IO,
) -> WrittenVhd:
    """Store a parsed export stream as a VHD with a new identity (the backup engine's path).

    A delta stream (differencing) needs ``parent``; a full stream must not have one. Blocks
    are written as they arrive; nothing is committed unless the whole stream was valid.
    """
    differencing = stream.footer.disk_type == DiskType.DIFFERENCING
    if differencing != (parent is not None):
        kind = "differencing" if differencing else "dynamic"
        raise VhdError(
            f"{stream.name} is {kind}: a parent link is "
            f"{'required' if differencing else 'not allowed'}"
        )
    writer = VhdWriter(
        path,
        size=stream.footer.current_size,
        blocks=stream.block_order,
        uuid=uuid,
        parent=parent,
        timestamp=timestamp,
        block_size=stream.block_size,
        whole_blocks=stream.whole_blocks,
        hasher=hasher,
        io=io,
    )
    with writer:
        for block in stream.blocks():
            writer.write_block(block.index, block.bitmap, block.data)
        return writer.close()
