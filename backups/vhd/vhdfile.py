"""One VHD file on disk, opened and validated before anything is read from it.

``open_vhd`` reads and checks every structure (``loading.py``) and refuses a file whose faults
could make a read wrong; the others stay in ``problems`` for ``check``. Blocks are read with
one ``os.pread`` of bitmap + data, returned as memoryviews, and each bitmap is checked against
what the file promises (the batmap, or XAPI's whole blocks).
"""

from __future__ import annotations

import os
import uuid as uuidlib
from pathlib import Path

from .bitmap import bitmap_size, first_partial_byte, full_bitmap, is_full
from .errors import TruncatedError, VhdFormatError
from .fields import CREATOR_XAPI, DEFAULT_BLOCK_SIZE, SECTOR, DiskType, ceil_div
from .footer import FOOTER_SIZE, Footer
from .loading import ERROR, WARNING, Problem, Region, StructureLoader

__all__ = ["ERROR", "WARNING", "Problem", "Region", "VhdFile", "footer_uuid", "open_vhd"]


class VhdFile(StructureLoader):
    """An open, validated VHD file (fixed, dynamic or differencing).

    Use ``open_vhd(path)``; close it (or use ``with``) to release the descriptor.
    """

    def __init__(self, path: Path, fd: int, *, writable: bool = False) -> None:
        self.path = path
        self.fd = fd
        self.writable = writable
        self.file_size = os.fstat(fd).st_size
        self.footer = None
        self.footer_raw = b""
        self.header = None
        self.header_raw = b""
        self.bat = None
        self.batmap = None
        self.locator_paths = []
        self.regions = []
        self.problems = []

    # -- geometry -------------------------------------------------------------------------

    @property
    def disk_type(self) -> DiskType:
        return self.footer.disk_type

    @property
    def size(self) -> int:
        """Virtual disk size (footer current size)."""
        return self.footer.current_size

    @property
    def uuid(self) -> uuidlib.UUID:
        return self.footer.uuid

    @property
    def block_size(self) -> int:
        return self.header.block_size if self.header else DEFAULT_BLOCK_SIZE

    @property
    def sectors_per_block(self) -> int:
        return self.block_size // SECTOR

    @property
    def bitmap_size(self) -> int:
        return bitmap_size(self.sectors_per_block)

    @property
    def block_span(self) -> int:
        """Bytes a block takes in the file: its bitmap and its data."""
        return self.bitmap_size + self.block_size

    @property
    def block_count(self) -> int:
        """Blocks of the virtual disk (the BAT may have more entries)."""
        return ceil_div(self.size, self.block_size)

    @property
    def whole_blocks_only(self) -> bool:
        """XAPI's stream writer (creator ``caml``) only ever writes full bitmaps."""
        return self.footer.creator_app == CREATOR_XAPI

    # -- blocks ---------------------------------------------------------------------------

    def has_block(self, index: int) -> bool:
        if self.header is None:
            return 0 <= index < self.block_count
        return self.bat.get(index) != 0xFFFFFFFF

    def allocated_blocks(self) -> list[int]:
        if self.header is None:
            return list(range(self.block_count))
        return self.bat.allocated()

    def block_offset(self, index: int) -> int | None:
        """File offset of block ``index``'s bitmap, or None when the block is absent."""
        entry = self.bat.get(index)
        return None if entry == 0xFFFFFFFF else entry * SECTOR

    def read_block(self, index: int) -> tuple[memoryview, memoryview]:
        """``(bitmap, data)`` of an allocated block, validated against the batmap.

        A fixed disk's blocks are all present with full bitmaps; its last block is padded with
        zeros to the block size.
        """
        if self.header is None:
            start = index * self.block_size
            data = self._pread(min(self.block_size, self.size - start), start)
            if len(data) < self.block_size:
                data += bytes(self.block_size - len(data))
            return memoryview(full_bitmap(self.sectors_per_block)), memoryview(data)
        offset = self.block_offset(index)
        raw = memoryview(self._pread(self.block_span, offset))
        if len(raw) != self.block_span:
            raise TruncatedError(
                f"{self.path}: block {index} at offset {offset}: read {len(raw)} of "
                f"{self.block_span} bytes (file truncated while open)"
            )
        bitmap = raw[: self.bitmap_size]
        self._check_bitmap(index, offset, bitmap)
        return bitmap, raw[self.bitmap_size :]

    def read_bitmap(self, index: int) -> memoryview:
        if self.header is None:
            return memoryview(full_bitmap(self.sectors_per_block))
        offset = self.block_offset(index)
        bitmap = memoryview(self._pread(self.bitmap_size, offset))
        self._check_bitmap(index, offset, bitmap)
        return bitmap

    def _check_bitmap(self, index: int, offset: int, bitmap: memoryview) -> None:
        spb = self.sectors_per_block
        if is_full(bitmap, spb):
            return
        if self.batmap is not None and self.batmap.is_full(index):
            reason = "the batmap marks the block fully allocated"
        elif self.whole_blocks_only:
            reason = "files written by XAPI (creator 'caml') only hold whole blocks"
        else:
            return
        byte, value = first_partial_byte(bitmap, spb)
        raise VhdFormatError(
            f"{self.path}: block {index}: bitmap at offset {offset} has byte {byte} = "
            f"0x{value:02x}, expected 0xff because {reason} (bitmap corrupted)"
        )

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> VhdFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = self.footer.disk_type.name.lower() if self.footer else "unreadable"
        return f"<VhdFile {self.path} {kind}>"


def footer_uuid(path: str | os.PathLike) -> uuidlib.UUID:
    """The UUID in a file's end footer, reading nothing else (a cheap identity probe)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        raw = os.pread(fd, FOOTER_SIZE, max(0, os.fstat(fd).st_size - FOOTER_SIZE))
    finally:
        os.close(fd)
    return Footer.parse(raw, f"{path}: footer").uuid


def open_vhd(path: str | os.PathLike, *, writable: bool = False, strict: bool = True) -> VhdFile:
    """Open and validate a VHD file.

    With ``strict`` (the default) a fatal problem raises ``VhdFormatError`` naming the file,
    the structure and the field; otherwise problems are left in ``.problems`` (for ``check``).
    """
    path = Path(path)
    fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    vhd = VhdFile(path, fd, writable=writable)
    try:
        vhd._load()
    except BaseException:
        vhd.close()
        raise
    fatal = vhd.fatal
    if strict and fatal:
        vhd.close()
        more = f" (and {len(fatal) - 1} more problems)" if len(fatal) > 1 else ""
        # Messages say "truncated" exactly when the file ends before what it announces.
        error = TruncatedError if "truncated" in fatal[0].message else VhdFormatError
        raise error(f"{path}: {fatal[0].message}{more}")
    return vhd
