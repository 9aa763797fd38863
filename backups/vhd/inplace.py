"""In-place writes into a merge's parent, ordered so that no read ever changes.

A reader of the chain sees the parent only through sectors its children do not hold, and
sees a block only once the BAT links it; so data goes first, is flushed, and only then do
bitmaps and BAT entries change. A file must always end with a valid footer, even after a power
loss, which may keep any write not yet flushed and drop any other: so before anything is
written over the footer the file ends with, a copy of the footer is written past everything
about to be written and *flushed* (``_grow``). New blocks of a merge go in that room, the
room for all of them made at once (one flush per merge, not per block).

The merged file must also be one blktap accepts (docs/vhd.md §12.1): creator ``tap`` 1.3 with
a valid batmap right after the BAT, and every block after the metadata. A parent that has no
batmap (XAPI's ``caml`` files, qemu's, Xen Orchestra's) or whose BAT must grow gets room after
its BAT the way blktap and vhd-lib make it: the few blocks lying there are copied to the end and
relinked (one 4-byte BAT entry each), locator payloads in the way are copied further on, then
the larger BAT, the batmap and the header that points at them are written; only then does the
footer say ``tap`` 1.3. Each of those steps leaves every read unchanged.
"""

from __future__ import annotations

import os
import struct

from .batmap import Batmap, batmap_checksum, markable, slot_bytes
from .bitmap import all_sectors, from_mask, is_full, runs, to_mask
from .errors import MergeError
from .fields import CREATOR_TAP, SECTOR, TAP_CREATOR_VERSION, UNUSED, round_up
from .fileio import OS_IO, RwFile, VhdIO
from .footer import FOOTER_SIZE, Footer
from .header import Header, ParentLocator
from .vhdfile import Region, VhdFile


def _overlaps(region: Region, start: int, end: int) -> bool:
    return region.start < end and region.end > start


def limit_bits(bits: bytes, size: int) -> bytearray:
    """``bits`` with every bit beyond what blktap checksums for ``size`` cleared."""
    kept = bytearray(bits)
    reach = markable(size)
    for byte in range(reach // 8, len(kept)):
        kept[byte] = 0
    return kept


class ParentWriter:
    """Writes into the parent file in the order that keeps every read unchanged.

    Steps: ``prepare`` (reclaim a dead tail, make room for a larger BAT and the batmap, say
    ``tap`` 1.3); ``reserve`` room for the new blocks to come; then per batch ``stage`` writes
    data (sectors of existing blocks in place; new blocks in the room, before the footer) and
    ``commit`` flushes, ORs bitmaps and links new BAT entries, then flushes again; last
    ``update_batmap`` and ``write_footer`` (which cuts off room left unused).
    """

    def __init__(self, parent: VhdFile, io: VhdIO = OS_IO) -> None:
        # The chain already parsed and validated the parent: reuse that, open it for writing.
        self.vhd = parent
        self.file: RwFile = io.open_rw(parent.path)
        if self.file.inode() != os.fstat(parent.fd).st_ino:
            self.file.close()
            raise MergeError(f"{parent.path}: the file was replaced while the merge opened it")
        self.spb = self.vhd.sectors_per_block
        self.span = self.vhd.block_span
        self.bitmap_size = self.vhd.bitmap_size
        self.header = self.vhd.header
        self.bat = self.vhd.bat.copy()  # entries change as blocks get linked
        self.alloc = self.vhd.file_size - FOOTER_SIZE  # where the next new block goes
        self.footer_at = self.alloc  # where the footer the file ends with is (on the disk)
        self.room = 1  # new blocks to make room for when the next one needs it
        self.footer = self.vhd.footer
        self.footer_raw = self.footer.pack()
        self.batmap_bits: bytes | None = None  # the valid batmap's bits once prepared
        self.batmap_stale = False  # its checksum must be rewritten even if no bit changes
        self.changed_bitmaps: dict[int, int] = {}
        self.new_entries: dict[int, int] = {}

    def __enter__(self) -> ParentWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.file.close()

    # -- preparing the parent ---------------------------------------------------------------

    def _blocks_with_index(self) -> list[tuple[Region, int]]:
        entries = self.bat.entries
        found = []
        for index in self.bat.allocated():
            offset = entries[index] * SECTOR
            found.append((Region(offset, offset + self.span, f"block {index}"), index))
        return found

    def _block_regions(self) -> list[Region]:
        return [region for region, _index in self._blocks_with_index()]

    def prepare(self, needed: int) -> None:
        """Before copying: reclaim a dead tail, room for the BAT and batmap, creator ``tap``."""
        used_end = max(region.end for region in [*self.vhd.regions, *self._block_regions()])
        if used_end < self.alloc:
            # Blocks copied by an interrupted run but never linked: take the space back. The
            # footer at the new end is flushed before the file is cut there; the cut itself
            # needs no flush of its own: until it is on the disk the file ends with its old
            # footer past dead space, and the flush that comes before anything is written over
            # the new footer (``_grow``, ``commit``, ``write_footer``) makes it durable.
            self.file.pwrite(self.footer_raw, used_end)
            self.file.datasync()
            self.file.truncate(used_end + FOOTER_SIZE)
            self.alloc = self.footer_at = used_end
        self._ensure_metadata(max(needed, len(self.bat)))
        footer = self.footer
        if footer.creator_app != CREATOR_TAP or footer.creator_version != TAP_CREATOR_VERSION:
            # From here on the batmap is read and checked: it must be valid before this.
            self.write_footer(
                footer.replace(creator_app=CREATOR_TAP, creator_version=TAP_CREATOR_VERSION)
            )

    def _slot(self, entries: int) -> tuple[int, int]:
        """Where blktap looks for a batmap for a BAT of ``entries`` entries, and its end."""
        start = self.header.table_offset + round_up(entries * 4)
        return start, start + slot_bytes(entries)

    def _ensure_metadata(self, entries: int) -> None:
        """A BAT of ``entries`` entries followed by a valid batmap, blocks after both."""
        batmap = self.vhd.batmap
        start, end = self._slot(entries)
        if (
            entries == len(self.bat)
            and batmap is not None
            and batmap.header_offset == start
            and len(batmap.bits) * 8 >= entries
        ):
            self.batmap_bits = batmap.bits
            stored = struct.unpack_from(">I", self.file.pread(SECTOR, start), 24)[0]
            # A checksum over all the bits (xoweb before it followed blktap) is rewritten.
            self.batmap_stale = stored != batmap_checksum(batmap.bits, self.footer.current_size)
            return
        bat_end = self.header.table_offset + self.header.bat_bytes
        in_the_way = [
            region
            for region in [*self.vhd.regions, *self._block_regions()]
            if region.start < end and region.end > bat_end and region.what != "batmap"
        ]
        if not in_the_way and entries == len(self.bat):
            # The slot is free (a batmap hidden by an interrupted update, or none yet).
            self._extend_to(end)
            self._write_batmap(start, entries, b"")
            self.file.datasync()
            return
        self._make_room(entries, bat_end, in_the_way)

    def _extend_to(self, end: int) -> None:
        """Make the data area reach ``end`` (the footer moves past it first)."""
        if end > self.alloc:
            self._grow(end)
            self.alloc = end

    def _grow(self, end: int) -> None:
        """A copy of the footer at ``end``, flushed, before anything is written over the footer
        the file ends with now (the flush is what a power loss needs: the copy must be on the
        disk before the writes that follow, which the disk may keep without it)."""
        if end <= self.footer_at:
            return
        self.file.pwrite(self.footer_raw, end)
        self.file.datasync()
        self.footer_at = end

    def has(self, index: int) -> bool:
        """Whether the parent holds block ``index`` already (staging it writes in place)."""
        return self.bat.get(index) != UNUSED

    def reserve(self, blocks: int) -> None:
        """Make room for ``blocks`` new blocks at once when the first of them comes."""
        self.room = max(1, blocks)

    def _write_batmap(self, start: int, entries: int, carried: bytes) -> None:
        """A valid batmap at ``start``: the bits blktap's checksum covers, no others."""
        bits = bytearray(slot_bytes(entries) - SECTOR)
        kept = limit_bits(carried, self.footer.current_size)[: len(bits)]
        bits[: len(kept)] = kept
        batmap = Batmap(start, bytes(bits))
        self.file.pwrite(batmap.pack(self.footer.current_size), start)
        self.batmap_bits = batmap.bits

    def _make_room(self, entries: int, bat_end: int, in_the_way: list[Region]) -> None:
        """Grow the BAT in place and put a batmap after it, moving what lies there.

        Steps: choose new places for the locator payloads in the way, after every other
        structure; copy the blocks in the way of the slot or of those places to the end, flush,
        relink them, flush; copy the payloads and point the header at them, flush; write the
        larger BAT, flush, and the batmap, flush; write the header that points at them, flush.
        Before each header write the previous header still describes a sound file.
        """
        start, end = self._slot(entries)
        for region in in_the_way:
            if not region.what.startswith(("block ", "parent locator ")):
                raise MergeError(
                    f"{self.vhd.path}: cannot make room for blktap's batmap after the BAT: "
                    f"the {region.what} lies at {region.start}..{region.end}"
                )
        structures = [r for r in self.vhd.regions if not r.what.startswith("block ")]
        payload_start = cursor = round_up(max([end, *(region.end for region in structures)]))
        locators = list(self.header.locators)
        payloads = []
        for region in in_the_way:
            if region.what.startswith("parent locator "):
                slot = int(region.what.split()[2])
                old = locators[slot]
                payload = self.file.pread(region.end - region.start, region.start)
                payloads.append((cursor, payload))
                locators[slot] = ParentLocator(old.code, old.data_space, old.data_length, cursor)
                cursor += round_up(len(payload))
        self._extend_to(cursor if payloads else end)
        self._move_blocks(
            [
                index
                for block, index in self._blocks_with_index()
                if _overlaps(block, bat_end, end) or _overlaps(block, payload_start, cursor)
            ]
        )
        if payloads:
            for offset, payload in payloads:
                self.file.pwrite(payload, offset)
            self._write_header(self.header.replace(locators=tuple(locators)))
        bat = self.bat.copy()
        bat.entries.extend([UNUSED] * (entries - len(bat)))
        carried = self.vhd.batmap.bits if self.vhd.batmap is not None else b""
        self.file.pwrite(bat.pack(), self.header.table_offset)
        # The larger BAT overwrites the old batmap's header; the new batmap may overwrite the
        # old one's bits. Flushed in between, so that a power loss never keeps the new bits
        # under an old batmap header that is still valid (its checksum would fail).
        self.file.datasync()
        self._write_batmap(start, entries, carried)
        self.file.datasync()
        self._write_header(self.header.replace(max_table_entries=entries))
        self.bat = bat

    def _write_header(self, header: Header) -> None:
        self.file.pwrite(header.pack(), self.footer.data_offset)
        self.file.datasync()
        self.header = header

    def _move_blocks(self, indices: list[int]) -> None:
        """Copy blocks to the end, flush, then relink them (a read never sees a half copy)."""
        if not indices:
            return
        relinked = {}
        self._grow(self.alloc + len(indices) * self.span)
        for index in sorted(indices):
            offset = self.bat.get(index) * SECTOR
            position = self.alloc
            self.file.pwrite(self.file.pread(self.span, offset), position)
            relinked[index] = position // SECTOR
            self.alloc = position + self.span
        self.file.datasync()
        for index, sector in relinked.items():
            self.bat.set(index, sector)
            self.file.pwrite(sector.to_bytes(4, "big"), self.header.table_offset + 4 * index)
        self.file.datasync()

    # -- copying ------------------------------------------------------------------------------

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
                self.file.pwrite(view[start * SECTOR : end * SECTOR], base + start * SECTOR)
                written += (end - start) * SECTOR
            self.changed_bitmaps[index] = self.changed_bitmaps.get(index, 0) | mask
            return written
        position = self.alloc
        if position + self.span > self.footer_at:
            self._grow(position + self.room * self.span)
        self.room = max(1, self.room - 1)
        self.file.pwritev([from_mask(mask, self.spb), view], position)
        self.new_entries[index] = position // SECTOR
        self.alloc = position + self.span
        return self.span

    def commit(self) -> None:
        """Flush data, then make it visible: OR bitmaps, link new blocks, flush again."""
        if not self.changed_bitmaps and not self.new_entries:
            return
        self.file.datasync()
        for index, mask in self.changed_bitmaps.items():
            offset = self.bat.get(index) * SECTOR
            bitmap = self.file.pread(self.bitmap_size, offset)
            merged = to_mask(bitmap, self.spb) | mask
            if merged != to_mask(bitmap, self.spb):
                self.file.pwrite(from_mask(merged, self.spb), offset)
        for index, sector in self.new_entries.items():
            self.bat.set(index, sector)
            self.file.pwrite(sector.to_bytes(4, "big"), self.header.table_offset + 4 * index)
        self.file.datasync()
        self.changed_bitmaps.clear()
        self.new_entries.clear()

    # -- finishing ----------------------------------------------------------------------------

    def update_batmap(self, merged: list[int], final_size: int) -> None:
        """Mark the merged blocks now full, hiding the batmap while its bits change.

        Only bits blktap's checksum covers for both the current and the final size are set,
        so the checksum stays right when the footer takes the final size.
        """
        if self.batmap_bits is None:
            self._ensure_metadata(len(self.bat))
        start, _end = self._slot(len(self.bat))
        on_disk = self.batmap_bits
        bits = limit_bits(on_disk, min(self.footer.current_size, final_size))
        reach = markable(min(self.footer.current_size, final_size))
        full = all_sectors(self.spb)
        for index in merged:
            entry = self.bat.get(index)
            if entry == UNUSED or index >= reach:
                continue
            bitmap = self.file.pread(self.bitmap_size, entry * SECTOR)
            if is_full(bitmap, self.spb) or to_mask(bitmap, self.spb) == full:
                bits[index >> 3] |= 0x80 >> (index & 7)
        if bytes(bits) == on_disk and not self.batmap_stale:
            return
        batmap = Batmap(start, bytes(bits))
        # Each flush orders the writes on disk too: a checksum never meets half-written bits.
        self.file.pwrite(bytes(8), start)
        self.file.datasync()
        packed = batmap.pack(self.footer.current_size)
        self.file.pwrite(packed[SECTOR:], start + SECTOR)
        self.file.datasync()
        self.file.pwrite(packed[:SECTOR], start)  # flushed with the footer that follows
        self.batmap_bits = batmap.bits

    def write_footer(self, footer: Footer) -> None:
        """The footer at the end (authoritative) first, then its copy at offset 0.

        One flush for both: a copy that lags behind is reported by ``check`` but never read.
        Room made for blocks that did not come (a child block with an empty bitmap) is cut
        off once the new footer before it is on the disk: until then the file still ends
        with the old footer, and reads as before.
        """
        raw = footer.pack()
        self.file.pwrite(raw, self.alloc)
        self.file.pwrite(raw, 0)
        self.file.datasync()
        if self.footer_at > self.alloc:
            self.file.truncate(self.alloc + FOOTER_SIZE)
            self.file.datasync()
            self.footer_at = self.alloc
        self.footer, self.footer_raw = footer, raw
