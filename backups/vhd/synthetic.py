"""One standalone dynamic VHD stream made from a chain: what a restore uploads.

XAPI's ``/import_raw_vdi`` needs a ``Content-Length``, so the exact size is known before the
first byte (``SyntheticVhd.size``). The layout is the forward-only one XAPI's importer walks
(docs/vhd.md §5.2): footer copy, header, BAT at 1536, batmap, every block some layer holds in
ascending order with a full bitmap (its content is the chain's, sector-precise), footer. The
creator is ``tap`` 1.3 so qemu-img reads the size right, and the batmap (every block full) is
there because blktap requires one of that version (§12.1). Blocks no layer holds are left out:
the importer writes onto a fresh, zeroed VDI.
"""

from __future__ import annotations

import io
import uuid as uuidlib
from collections.abc import Iterator

from .bat import Bat
from .batmap import Batmap, slot_bytes
from .bitmap import bitmap_size, full_bitmap
from .chain import Chain, IteratorReader
from .fields import SECTOR, DiskType, round_up
from .footer import FOOTER_SIZE, Footer
from .header import Header

TABLE_OFFSET = 3 * SECTOR


class SyntheticVhd:
    """A dynamic VHD of a chain's content, streamed; ``size`` is its exact length in bytes."""

    def __init__(self, chain: Chain, *, uuid: uuidlib.UUID | None = None) -> None:
        self.chain = chain
        newest = chain.newest.footer
        self.footer = Footer(
            disk_type=DiskType.DYNAMIC,
            current_size=chain.size,
            uuid=uuid or newest.uuid,
            timestamp=newest.timestamp,
        )
        entries = chain.block_count
        self.blocks = chain.block_indices()
        self.span = bitmap_size(chain.spb) + chain.block_size
        header = Header(
            table_offset=TABLE_OFFSET,
            max_table_entries=entries,
            block_size=chain.block_size,
        )
        bat = Bat.empty(entries)
        batmap = Batmap.build(
            TABLE_OFFSET + round_up(entries * 4), entries, self.blocks, chain.size
        )
        first = batmap.header_offset + slot_bytes(entries)
        for position, index in enumerate(self.blocks):
            bat.set(index, (first + position * self.span) // SECTOR)
        self.prefix = self.footer.pack() + header.pack() + bat.pack() + batmap.pack(chain.size)
        self.size = len(self.prefix) + len(self.blocks) * self.span + FOOTER_SIZE

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes | memoryview]:
        yield self.prefix
        bitmap = full_bitmap(self.chain.spb)
        for index in self.blocks:
            yield bitmap
            yield self.chain.read_block(index)
        yield self.footer.pack()

    def stream(self) -> io.RawIOBase:
        """A file object with ``read(n)`` (and ``len()``) for an HTTP upload body."""
        return IteratorReader(iter(self), self.size)


def synthetic_vhd(chain: Chain, *, uuid: uuidlib.UUID | None = None) -> SyntheticVhd:
    """The chain as one dynamic VHD stream (see ``SyntheticVhd``)."""
    return SyntheticVhd(chain, uuid=uuid)
