"""Forward-only parser of a VHD export stream (an HTTP body: no seek, no length).

``parse_stream(body)`` reads the footer copy, the header and everything up to the BAT, then
``VhdStream.blocks()`` yields each block in file order as it arrives and finally checks the
trailing footer against the copy and that the stream ends there. Memory stays at one block
plus the BAT. Works for XAPI's layout (docs/vhd.md §5.1: BAT at 2048, ascending blocks)
and any other whose metadata precedes its blocks (qemu's, ours). Errors say which block or
structure, at which stream offset, and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn, Protocol

from .bat import Bat
from .bitmap import bitmap_size, first_partial_byte, is_full
from .errors import TruncatedError, VhdFormatError
from .fields import CREATOR_XAPI, SECTOR, DiskType, ceil_div
from .footer import FOOTER_SIZE, Footer, footer_problems
from .header import HEADER_SIZE, Header

#: Bytes tolerated between the last block and the footer (padding some writers leave).
_MAX_TRAILER = 4 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Block:
    """One block of a stream: its index, padded bitmap and data (block-size bytes).

    ``bitmap`` and ``data`` are memoryviews over one read buffer (bytes-like, compare equal
    to bytes); keep ``bytes(block.data)`` if the block must outlive the next one.
    """

    index: int
    bitmap: memoryview
    data: memoryview


class VhdStream:
    """The metadata of a stream being parsed, and its blocks as an iterator (once)."""

    def __init__(self, body: Readable, name: str) -> None:
        self._body = body
        self.name = name
        self.offset = 0
        self.footer: Footer
        self.header: Header
        self.bat: Bat
        self._consumed = False

    # -- reading --------------------------------------------------------------------------

    def _read(self, size: int, what: str) -> bytes | bytearray:
        """Exactly ``size`` bytes, looping over short reads; precise error at the end.

        Bodies with ``readinto`` (files, urllib3 responses) fill one buffer in place, so a
        socket's short reads cost no extra copy.
        """
        readinto = getattr(self._body, "readinto", None)
        if readinto is not None:
            buffer = bytearray(size)
            view = memoryview(buffer)
            got = 0
            while got < size:
                count = readinto(view[got:])
                if not count:
                    self._truncated(size, got, what)
                got += count
            self.offset += size
            return buffer
        chunks, missing = [], size
        while missing:
            chunk = self._body.read(missing)
            if not chunk:
                self._truncated(size, size - missing, what)
            chunks.append(chunk)
            missing -= len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.offset += size
        return data

    def _truncated(self, size: int, got: int, what: str) -> NoReturn:
        raise TruncatedError(
            f"{self.name}: stream ended at offset {self.offset + got} inside {what} "
            f"(expected {size} bytes from offset {self.offset}, got {got})"
        )

    def _skip_to(self, offset: int, what: str) -> None:
        if offset < self.offset:
            raise VhdFormatError(
                f"{self.name}: {what} is at offset {offset}, before the current position "
                f"{self.offset}: not a forward-only stream"
            )
        while self.offset < offset:
            self._read(min(offset - self.offset, 1 << 20), f"the gap before {what}")

    # -- metadata -------------------------------------------------------------------------

    def _start(self) -> None:
        raw = self._read(FOOTER_SIZE, "the footer copy")
        if raw.startswith(b"HTTP/"):
            first_line = raw.split(b"\r\n", 1)[0].decode("latin-1")
            raise VhdFormatError(
                f"{self.name}: the stream holds an HTTP response ({first_line!r}) instead of a "
                "VHD (XAPI reported an error inside the body)"
            )
        problems = footer_problems(raw)
        if problems:
            raise VhdFormatError(f"{self.name}: footer copy at offset 0: {problems[0]}")
        self.footer = Footer.unpack(raw)
        self._footer_copy = raw
        if self.footer.disk_type == DiskType.FIXED:
            raise VhdFormatError(
                f"{self.name}: disk type is fixed (2); a stream must be dynamic (3) or "
                "differencing (4)"
            )
        self._skip_to(self.footer.data_offset, "the dynamic header")
        where = f"{self.name}: header at offset {self.offset}"
        self.header = Header.parse(self._read(HEADER_SIZE, "the dynamic header"), where)
        needed = ceil_div(self.footer.current_size, self.header.block_size)
        if self.header.max_table_entries < needed:
            raise VhdFormatError(
                f"{where}: max table entries is {self.header.max_table_entries}, but a disk of "
                f"{self.footer.current_size} bytes needs {needed}"
            )
        self._skip_to(self.header.table_offset, "the BAT")
        self.bat = Bat.unpack(
            self._read(self.header.bat_bytes, "the BAT"), self.header.max_table_entries
        )
        self._order = self.bat.by_offset()
        span = self.block_span
        previous = None
        for offset, index in self._order:
            if offset < self.offset:
                raise VhdFormatError(
                    f"{self.name}: block {index}: BAT entry points to offset {offset}, inside "
                    f"the metadata that ends at {self.offset} (BAT corrupted)"
                )
            if previous is not None and offset < previous[0] + span:
                raise VhdFormatError(
                    f"{self.name}: block {index} at offset {offset} overlaps block "
                    f"{previous[1]} at offset {previous[0]} (BAT corrupted)"
                )
            previous = (offset, index)

    @property
    def block_size(self) -> int:
        return self.header.block_size

    @property
    def sectors_per_block(self) -> int:
        return self.header.block_size // SECTOR

    @property
    def block_span(self) -> int:
        return bitmap_size(self.sectors_per_block) + self.header.block_size

    @property
    def block_indices(self) -> list[int]:
        """Indices of the blocks the stream will carry, ascending."""
        return sorted(index for _offset, index in self._order)

    @property
    def block_order(self) -> list[int]:
        """Indices of the blocks in the order the stream carries them."""
        return [index for _offset, index in self._order]

    @property
    def whole_blocks(self) -> bool:
        """True when the writer promises full bitmaps (XAPI's ``caml``)."""
        return self.footer.creator_app == CREATOR_XAPI

    # -- blocks ---------------------------------------------------------------------------

    def blocks(self) -> Iterator[Block]:
        """Yield blocks in stream order, then verify the trailing footer and the end."""
        if self._consumed:
            raise VhdFormatError(f"{self.name}: the blocks of a stream can be read only once")
        self._consumed = True
        spb = self.sectors_per_block
        bmp_size = bitmap_size(spb)
        for offset, index in self._order:
            self._skip_to(offset, f"block {index}")
            raw = memoryview(self._read(self.block_span, f"block {index}"))
            bitmap, data = raw[:bmp_size], raw[bmp_size:]  # views: no copy of 2 MiB
            if self.whole_blocks and not is_full(bitmap, spb):
                byte, value = first_partial_byte(bitmap, spb)
                raise VhdFormatError(
                    f"{self.name}: block {index}: bitmap at offset {offset} has byte {byte} = "
                    f"0x{value:02x}, expected 0xff (XAPI streams hold whole blocks; "
                    "stream corrupted)"
                )
            yield Block(index, bitmap, data)
        self._finish()

    def _finish(self) -> None:
        """The rest of the stream must be a footer equal to the copy, then the end."""
        start = self.offset
        trailer = b""
        while True:
            chunk = self._body.read(1 << 20)
            if not chunk:
                break
            trailer += chunk
            if len(trailer) > _MAX_TRAILER + FOOTER_SIZE:
                raise VhdFormatError(
                    f"{self.name}: more than {_MAX_TRAILER} bytes follow the last block at "
                    f"offset {start}; expected only the footer"
                )
        self.offset += len(trailer)
        if len(trailer) < FOOTER_SIZE:
            raise TruncatedError(
                f"{self.name}: stream ended at offset {self.offset}, {len(trailer)} bytes after "
                f"the last block; expected a {FOOTER_SIZE}-byte footer (stream truncated)"
            )
        raw = trailer[-FOOTER_SIZE:]
        where = f"{self.name}: footer at offset {self.offset - FOOTER_SIZE}"
        problems = footer_problems(raw)
        if problems:
            raise VhdFormatError(f"{where}: {problems[0]}")
        if raw != self._footer_copy:
            trailing = Footer.unpack(raw)
            fields = [
                name
                for name in self.footer.__dataclass_fields__
                if getattr(trailing, name) != getattr(self.footer, name)
            ]
            raise VhdFormatError(
                f"{where}: differs from the footer copy at offset 0 in "
                f"{', '.join(fields) or 'reserved bytes'}"
            )


def parse_stream(body: Readable, name: str = "VHD stream") -> VhdStream:
    """Start parsing ``body``: reads up to the BAT now, blocks later via ``.blocks()``."""
    stream = VhdStream(body, name)
    stream._start()
    return stream
