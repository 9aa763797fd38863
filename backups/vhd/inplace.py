"""In-place writes into a merge's parent, ordered so that no read ever changes.

A reader of the chain sees the parent only through sectors its children do not hold, and
sees a block only once the BAT links it; so data goes first, is flushed, and only then do
bitmaps and BAT entries change. A file must always end with a valid footer, so a new block
is written where the footer was only after a copy of the footer was written past it.

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
    ``tap`` 1.3); then per batch ``stage`` writes data (sectors of existing blocks in place; new
    blocks where the footer was, after writing the footer past them) and ``commit`` flushes,
    ORs bitmaps and links new BAT entries, then flushes again; last ``update_batmap`` and
    ``write_footer``.
    """

    def __init__(self, parent: VhdFile) -> None:
        # The chain already parsed and validated the parent: reuse that, open it for writing.
        self.vhd = parent
        self.fd = os.open(parent.path, os.O_RDWR)
        if os.fstat(self.fd).st_ino != os.fstat(parent.fd).st_ino:
            os.close(self.fd)
            raise MergeError(f"{parent.path}: the file was replaced while the merge opened it")
        self.spb = self.vhd.sectors_per_block
        self.span = self.vhd.block_span
        self.bitmap_size = self.vhd.bitmap_size
        self.header = self.vhd.header
        self.bat = self.vhd.bat.copy()  # entries change as blocks get linked
        self.alloc = self.vhd.file_size - FOOTER_SIZE
        self.footer = self.vhd.footer
        self.footer_raw = self.footer.pack()
        self.batmap_bits: bytes | None = None  # the valid batmap's bits once prepared
        self.batmap_stale = False  # its checksum must be rewritten even if no bit changes
        self.changed_bitmaps: dict[int, int] = {}
        self.new_entries: dict[int, int] = {}

    def __enter__(self) -> ParentWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        os.close(self.fd)

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
            # Blocks copied by an interrupted run but never linked: take the space back.
            os.pwrite(self.fd, self.footer_raw, used_end)
            os.fdatasync(self.fd)
            os.ftruncate(self.fd, used_end + FOOTER_SIZE)
            os.fdatasync(self.fd)
            self.alloc = used_end
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
            stored = struct.unpack_from(">I", os.pread(self.fd, SECTOR, start), 24)[0]
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
            os.fdatasync(self.fd)
            return
        self._make_room(entries, bat_end, in_the_way)

    def _extend_to(self, end: int) -> None:
        """Make the data area reach ``end`` (the footer moves past it first)."""
        if end > self.alloc:
            self._extend_footer(end)
            os.fdatasync(self.fd)
            self.alloc = end

    def _write_batmap(self, start: int, entries: int, carried: bytes) -> None:
        """A valid batmap at ``start``: the bits blktap's checksum covers, no others."""
        bits = bytearray(slot_bytes(entries) - SECTOR)
        kept = limit_bits(carried, self.footer.current_size)[: len(bits)]
        bits[: len(kept)] = kept
        batmap = Batmap(start, bytes(bits))
        os.pwrite(self.fd, batmap.pack(self.footer.current_size), start)
        self.batmap_bits = batmap.bits

    def _make_room(self, entries: int, bat_end: int, in_the_way: list[Region]) -> None:
        """Grow the BAT in place and put a batmap after it, moving what lies there.

        Steps: choose new places for the locator payloads in the way, after every other
        structure; copy the blocks in the way of the slot or of those places to the end, flush,
        relink them, flush; copy the payloads and point the header at them, flush; write the
        larger BAT and the batmap, flush; write the header that points at them, flush. Before
        each header write the previous header still describes a sound file.
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
                payload = os.pread(self.fd, region.end - region.start, region.start)
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
                os.pwrite(self.fd, payload, offset)
            self._write_header(self.header.replace(locators=tuple(locators)))
        bat = self.bat.copy()
        bat.entries.extend([UNUSED] * (entries - len(bat)))
        carried = self.vhd.batmap.bits if self.vhd.batmap is not None else b""
        os.pwrite(self.fd, bat.pack(), self.header.table_offset)
        self._write_batmap(start, entries, carried)
        os.fdatasync(self.fd)
        self._write_header(self.header.replace(max_table_entries=entries))
        self.bat = bat

    def _write_header(self, header: Header) -> None:
        os.pwrite(self.fd, header.pack(), self.footer.data_offset)
        os.fdatasync(self.fd)
        self.header = header

    def _move_blocks(self, indices: list[int]) -> None:
        """Copy blocks to the end, flush, then relink them (a read never sees a half copy)."""
        if not indices:
            return
        relinked = {}
        for index in sorted(indices):
            offset = self.bat.get(index) * SECTOR
            position = self.alloc
            self._extend_footer(position + self.span)
            os.pwrite(self.fd, os.pread(self.fd, self.span, offset), position)
            relinked[index] = position // SECTOR
            self.alloc = position + self.span
        os.fdatasync(self.fd)
        for index, sector in relinked.items():
            self.bat.set(index, sector)
            os.pwrite(self.fd, sector.to_bytes(4, "big"), self.header.table_offset + 4 * index)
        os.fdatasync(self.fd)

    def _extend_footer(self, new_end: int) -> None:
        os.pwrite(self.fd, self.footer_raw, new_end)

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
            bitmap = os.pread(self.fd, self.bitmap_size, entry * SECTOR)
            if is_full(bitmap, self.spb) or to_mask(bitmap, self.spb) == full:
                bits[index >> 3] |= 0x80 >> (index & 7)
        if bytes(bits) == on_disk and not self.batmap_stale:
            return
        batmap = Batmap(start, bytes(bits))
        # Each flush orders the writes on disk too: a checksum never meets half-written bits.
        os.pwrite(self.fd, bytes(8), start)
        os.fdatasync(self.fd)
        packed = batmap.pack(self.footer.current_size)
        os.pwrite(self.fd, packed[SECTOR:], start + SECTOR)
        os.fdatasync(self.fd)
        os.pwrite(self.fd, packed[:SECTOR], start)  # flushed with the footer that follows
        self.batmap_bits = batmap.bits

    def write_footer(self, footer: Footer) -> None:
        """The footer at the end (authoritative) first, then its copy at offset 0.

        One flush for both: a copy that lags behind is reported by ``check`` but never read.
        """
        raw = footer.pack()
        os.pwrite(self.fd, raw, self.alloc)
        os.pwrite(self.fd, raw, 0)
        os.fdatasync(self.fd)
        self.footer, self.footer_raw = footer, raw
