"""In-place writes into a merge's parent, ordered so that no read ever changes.

A reader of the chain sees the parent only through sectors its children do not hold, and
sees a block only once the BAT links it; so data goes first, is flushed, and only then do
bitmaps and BAT entries change. A file must always end with a valid footer, so a new block
is written where the footer was only after a copy of the footer was written past it. The
BAT grows by moving to the end of the file, switched by one header write. blktap's batmap is
hidden (cookie cleared) while its bits and checksum change.
"""

from __future__ import annotations

import os

from .batmap import Batmap, sectors_for
from .bitmap import all_sectors, from_mask, is_full, runs, to_mask
from .errors import MergeError
from .fields import CREATOR_TAP, SECTOR, TAP_CREATOR_VERSION, UNUSED
from .footer import FOOTER_SIZE, Footer
from .vhdfile import VhdFile


class ParentWriter:
    """Writes into the parent file in the order that keeps every read unchanged.

    Steps per batch: ``stage`` writes data (sectors of existing blocks in place; new blocks
    where the footer was, after writing the footer past them), ``commit`` flushes, then ORs
    bitmaps and links new BAT entries, then flushes again.
    """

    def __init__(self, parent: VhdFile, *, keep_batmap: bool | None) -> None:
        # The chain already parsed and validated the parent: reuse that, open it for writing.
        self.vhd = parent
        self.fd = os.open(parent.path, os.O_RDWR)
        if os.fstat(self.fd).st_ino != os.fstat(parent.fd).st_ino:
            os.close(self.fd)
            raise MergeError(f"{parent.path}: the file was replaced while the merge opened it")
        self.keep_batmap = bool(keep_batmap)
        self.spb = self.vhd.sectors_per_block
        self.span = self.vhd.block_span
        self.bitmap_size = self.vhd.bitmap_size
        self.header = self.vhd.header
        self.bat = self.vhd.bat.copy()  # entries change as blocks get linked
        self.alloc = self.vhd.file_size - FOOTER_SIZE
        self.footer = self.vhd.footer
        self.footer_raw = self.footer.pack()
        self.changed_bitmaps: dict[int, int] = {}
        self.new_entries: dict[int, int] = {}

    def __enter__(self) -> ParentWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

    def _batmap_slot(self) -> tuple[int, int]:
        start = self.header.table_offset + self.header.bat_bytes
        return start, start + SECTOR + sectors_for(self.header.max_table_entries) * SECTOR

    def _used_end(self) -> int:
        ends = [region.end for region in self.vhd.regions]
        entries = self.bat.entries
        last = max((entries[index] for index in self.bat.allocated()), default=None)
        if last is not None:
            ends.append(last * SECTOR + self.span)
        if self.keep_batmap:
            ends.append(self._batmap_slot()[1])
        return max(ends)

    def prepare(self, needed: int) -> None:
        """Before copying: creator ``tap``, reclaim a dead tail, grow the BAT if too small."""
        vhd = self.vhd
        if vhd.footer.creator_app != CREATOR_TAP:
            # Partial child blocks must not make a caml-stamped file look corrupt.
            self.write_footer(
                vhd.footer.replace(creator_app=CREATOR_TAP, creator_version=TAP_CREATOR_VERSION)
            )
        used_end = self._used_end()
        if used_end < self.alloc:
            # Blocks allocated by an interrupted run but never linked: take the space back.
            os.pwrite(self.fd, self.footer_raw, used_end)
            os.fdatasync(self.fd)
            os.ftruncate(self.fd, used_end + FOOTER_SIZE)
            os.fdatasync(self.fd)
            self.alloc = used_end
        if len(self.bat) < needed:
            self._grow_bat(needed)

    def _grow_bat(self, needed: int) -> None:
        """Move the BAT (and the batmap slot) to the end, sized for ``needed`` entries."""
        bat = self.bat.copy()
        bat.entries.extend([UNUSED] * (needed - len(bat)))
        packed = bat.pack()
        extra = SECTOR + sectors_for(needed) * SECTOR if self.keep_batmap else 0
        start = self.alloc
        self._extend_footer(start + len(packed) + extra)
        os.pwrite(self.fd, packed + bytes(extra), start)
        os.fdatasync(self.fd)
        self.header = self.header.replace(table_offset=start, max_table_entries=needed)
        os.pwrite(self.fd, self.header.pack(), self.vhd.footer.data_offset)
        os.fdatasync(self.fd)
        self.bat = bat
        self.alloc = start + len(packed) + extra

    def _extend_footer(self, new_end: int) -> None:
        os.pwrite(self.fd, self.footer_raw, new_end)

    def stage(self, index: int, mask: int, data: bytes | bytearray | memoryview) -> int:
        """Write the sectors of ``mask`` for block ``index``; return the bytes written.

        Bitmaps and BAT entries are only recorded: ``commit`` writes them after a flush.
        """
        if not mask:
            return 0  # a child block with an empty bitmap holds nothing
        entry = self.bat.get(index)
        view = memoryview(data)
        if entry != UNUSED:
            base = entry * SECTOR + self.bitmap_size
            written = 0
            for start, end in runs(mask, self.spb):
                os.pwrite(self.fd, view[start * SECTOR : end * SECTOR], base + start * SECTOR)
                written += (end - start) * SECTOR
            self.changed_bitmaps[index] = self.changed_bitmaps.get(index, 0) | mask
            return written
        position = self.alloc
        self._extend_footer(position + self.span)
        os.pwritev(self.fd, [from_mask(mask, self.spb), view], position)
        self.new_entries[index] = position // SECTOR
        self.alloc = position + self.span
        return self.span

    def commit(self) -> None:
        """Flush data, then make it visible: OR bitmaps, link new blocks, flush again."""
        if not self.changed_bitmaps and not self.new_entries:
            return
        os.fdatasync(self.fd)
        for index, mask in self.changed_bitmaps.items():
            offset = self.bat.get(index) * SECTOR
            bitmap = os.pread(self.fd, self.bitmap_size, offset)
            merged = to_mask(bitmap, self.spb) | mask
            if merged != to_mask(bitmap, self.spb):
                os.pwrite(self.fd, from_mask(merged, self.spb), offset)
        for index, sector in self.new_entries.items():
            self.bat.set(index, sector)
            os.pwrite(self.fd, sector.to_bytes(4, "big"), self.header.table_offset + 4 * index)
        os.fdatasync(self.fd)
        self.changed_bitmaps.clear()
        self.new_entries.clear()

    def update_batmap(self, merged: list[int]) -> None:
        """Mark newly full blocks, hiding the batmap while its bits and checksum change."""
        start, end = self._batmap_slot()
        bits = bytearray(sectors_for(self.header.max_table_entries) * SECTOR)
        if self.vhd.batmap is not None and self.vhd.batmap.header_offset == start:
            bits[:] = self.vhd.batmap.bits
        else:
            # Hidden by an interrupted update or moved with the BAT: rebuild from every block.
            merged = self.bat.allocated()
        full = all_sectors(self.spb)
        for index in merged:
            entry = self.bat.get(index)
            if entry == UNUSED:
                continue
            bitmap = os.pread(self.fd, self.bitmap_size, entry * SECTOR)
            if is_full(bitmap, self.spb) or to_mask(bitmap, self.spb) == full:
                bits[index >> 3] |= 0x80 >> (index & 7)
        batmap = Batmap(start, bytes(bits))
        if self.vhd.batmap is not None and batmap.bits == self.vhd.batmap.bits:
            return
        # Each flush orders the writes on disk too: a checksum never meets half-written bits.
        os.pwrite(self.fd, bytes(8), start)
        os.fdatasync(self.fd)
        packed = batmap.pack()
        os.pwrite(self.fd, packed[SECTOR:], start + SECTOR)
        os.fdatasync(self.fd)
        os.pwrite(self.fd, packed[:SECTOR], start)  # flushed with the footer that follows
        assert start + len(packed) == end

    def write_footer(self, footer: Footer) -> None:
        """The footer at the end (authoritative) first, then its copy at offset 0.

        One flush for both: a copy that lags behind is reported by ``check`` but never read.
        """
        raw = footer.pack()
        os.pwrite(self.fd, raw, self.alloc)
        os.pwrite(self.fd, raw, 0)
        os.fdatasync(self.fd)
        self.footer, self.footer_raw = footer, raw
