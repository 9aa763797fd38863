"""A chain of VHD files read as one disk.

``open_chain(newest)`` follows parent links from the newest file to the full one, checking at
each step that the parent's footer UUID is the one the child names, that block sizes agree and
that no file appears twice. Reads are sector-precise (docs/vhd.md §7): for each sector
the newest layer whose BAT has the block *and* whose bitmap bit is set supplies the data. The
common case, a newest owner with a full bitmap, is one ``pread`` of the whole block; only
partial bitmaps fall back to copying runs of sectors. Blocks no layer has are never read.
"""

from __future__ import annotations

import io
import os
import uuid as uuidlib
from array import array
from collections.abc import Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

from .bitmap import all_sectors, is_full, runs, to_mask
from .errors import ChainError, VhdFormatError
from .fields import SECTOR, UNUSED, DiskType, ceil_div
from .mergestate import find_finalizing_merge
from .vhdfile import VhdFile, footer_uuid, open_vhd

#: "No layer holds this block" in ``Chain.newest_owner`` (chains are far shorter than this).
_NOBODY = 0xFFFF


def parent_candidates(child: VhdFile) -> list[Path]:
    """Where the parent of ``child`` may be, best first.

    Relative names (XO's and ours) are joined to the child's directory, so a chain moved to
    another folder still opens; absolute names (XAPI's host paths) are tried as given, then
    as a sibling with the same file name.
    """
    names = [child.header.parent_name] + [name for _loc, name in child.locator_paths if name]
    folder = child.path.parent
    found: list[Path] = []
    for name in names:
        if not name:
            continue
        if ":" in name[:3]:  # a Windows path with a drive: only its file name means anything
            options = [folder / PureWindowsPath(name).name]
        elif PurePosixPath(name.replace("\\", "/")).is_absolute():
            options = [Path(name), folder / PurePosixPath(name).name]
        else:
            options = [folder / name.replace("\\", "/")]
        for option in options:
            if option not in found:
                found.append(option)
    return found


class Chain:
    """Layers of one disk, newest first; the last is dynamic or fixed."""

    def __init__(self, layers: list[VhdFile]) -> None:
        self.layers = layers
        newest = layers[0]
        self.path = newest.path
        self.size = newest.size
        self.block_size = newest.block_size
        self.spb = self.block_size // SECTOR
        self.block_count = ceil_div(self.size, self.block_size)
        self._zero = bytes(self.block_size)
        self._newest_owner: array | None = None
        # (entries array, layer) per dynamic layer; fixed layers own every block.
        self._tables = [(layer.bat.entries if layer.bat else None, layer) for layer in layers]

    @property
    def newest(self) -> VhdFile:
        return self.layers[0]

    @property
    def uuid(self) -> uuidlib.UUID:
        return self.layers[0].uuid

    def owners(self, index: int) -> list[VhdFile]:
        """Layers whose BAT has block ``index``, newest first."""
        found = []
        for entries, layer in self._tables:
            if entries is None:
                if index < layer.block_count:
                    found.append(layer)
            elif index < len(entries) and entries[index] != UNUSED:
                found.append(layer)
        return found

    def block_indices(self) -> list[int]:
        """Blocks some layer holds, ascending (the blocks a synthetic full carries)."""
        present: set[int] = set()
        for layer in self.layers:
            present.update(layer.allocated_blocks())
        return sorted(index for index in present if index < self.block_count)

    @property
    def newest_owner(self) -> array:
        """Per block, the position in ``layers`` of the newest layer holding it (or none).

        Built once from each layer's allocated blocks (cost: the allocated blocks, not the
        disk), so reading a block asks one layer instead of scanning the whole chain.
        """
        if self._newest_owner is None:
            table = array("H", [_NOBODY]) * self.block_count
            for position in range(len(self.layers) - 1, -1, -1):
                for index in self.layers[position].allocated_blocks():
                    if index < self.block_count:
                        table[index] = position
            self._newest_owner = table
        return self._newest_owner

    def read_block(self, index: int) -> bytes | bytearray | memoryview:
        """The disk's content of block ``index`` (block-size bytes, zeros past the end)."""
        position = self.newest_owner[index] if 0 <= index < self.block_count else _NOBODY
        if position == _NOBODY:
            return self._zero
        newest = self.layers[position]
        bitmap, data = newest.read_block(index)
        if is_full(bitmap, self.spb):
            return data
        return compose_block(self.owners(index), index)[1]

    def read(self, offset: int, length: int) -> bytes:
        """Random read of ``length`` bytes at ``offset`` (clipped to the disk size)."""
        if offset < 0 or length < 0:
            raise ValueError("offset and length must be positive")
        end = min(offset + length, self.size)
        parts = []
        while offset < end:
            index, start = divmod(offset, self.block_size)
            stop = min(self.block_size, start + end - offset)
            parts.append(bytes(memoryview(self.read_block(index))[start:stop]))
            offset += stop - start
        return b"".join(parts)

    def iter_raw(self) -> Iterator[memoryview]:
        """The whole disk, block by block (the last one cut at the disk size)."""
        for index in range(self.block_count):
            block = memoryview(self.read_block(index))
            tail = self.size - index * self.block_size
            yield block if tail >= self.block_size else block[:tail]

    def raw_stream(self) -> io.RawIOBase:
        """The raw disk as a read-only file object (for restore-to-file and uploads)."""
        return IteratorReader(self.iter_raw(), self.size)

    def close(self) -> None:
        for layer in self.layers:
            layer.close()

    def __enter__(self) -> Chain:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Chain {self.path} {len(self.layers)} layers>"


class IteratorReader(io.RawIOBase):
    """A file object over an iterator of byte chunks with a known total ``length``."""

    def __init__(self, chunks: Iterator[bytes | memoryview], length: int) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self.length = length
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        target = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = memoryview(next(self._chunks)).cast("B")
            except StopIteration:
                return 0
        count = min(len(target), len(self._pending))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self.position += count
        return count

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (one chunk at most, so large reads cost no extra copy)."""
        if size is None or size < 0:
            return self.readall()
        if not self._pending:
            try:
                self._pending = memoryview(next(self._chunks)).cast("B")
            except StopIteration:
                return b""
        chunk, self._pending = self._pending[:size], self._pending[size:]
        self.position += len(chunk)
        return bytes(chunk)

    def __len__(self) -> int:
        return self.length


def compose_block(owners: list[VhdFile], index: int) -> tuple[int, bytes | bytearray | memoryview]:
    """``(mask, data)`` of block ``index`` over ``owners`` (newest first, all holding it).

    ``mask`` has the sectors some owner holds; ``data`` is exact for those sectors and zero
    elsewhere. A newest owner with a full bitmap is the whole answer (one read).
    """
    first = owners[0]
    spb = first.sectors_per_block
    bitmap, data = first.read_block(index)
    if is_full(bitmap, spb):
        return all_sectors(spb), data
    block = bytearray(first.block_size)
    remaining = all_sectors(spb)
    for number, layer in enumerate(owners):
        if number:
            bitmap, data = layer.read_block(index)
        mask = to_mask(bitmap, spb) & remaining
        for start, end in runs(mask, spb):
            block[start * SECTOR : end * SECTOR] = data[start * SECTOR : end * SECTOR]
        remaining &= ~mask
        if not remaining:
            break
    return all_sectors(spb) & ~remaining, block


def open_chain(path: str | os.PathLike) -> Chain:
    """Open the chain ending at ``path`` (its newest file), validated link by link."""
    layers: list[VhdFile] = []
    try:
        current = open_vhd(path)
        while True:
            _append(layers, current)
            if current.disk_type != DiskType.DIFFERENCING:
                return Chain(layers)
            current = _open_parent(layers)
    except BaseException:
        for layer in layers:
            layer.close()
        raise


def _append(layers: list[VhdFile], layer: VhdFile) -> None:
    if len(layers) >= _NOBODY:
        layer.close()
        raise ChainError(f"{layers[0].path}: chain longer than {_NOBODY} files")
    here = os.path.realpath(layer.path)
    for other in layers:
        if os.path.realpath(other.path) == here or other.uuid == layer.uuid:
            layer.close()
            names = " -> ".join(str(item.path) for item in [*layers, layer])
            raise ChainError(
                f"loop in parents: {names} (UUID {layer.uuid} appears twice in the chain)"
            )
    if layers and layer.block_size != layers[0].block_size:
        layer.close()
        raise ChainError(
            f"{layer.path}: block size {layer.block_size} differs from {layers[0].path}'s "
            f"{layers[0].block_size}"
        )
    layers.append(layer)


def _open_parent(layers: list[VhdFile]) -> VhdFile:
    """Open the parent the last layer names, checking its UUID."""
    child = layers[-1]
    candidates = parent_candidates(child)
    existing = [candidate for candidate in candidates if candidate.is_file()]
    if not existing:
        tried = ", ".join(str(candidate) for candidate in candidates) or "no name in the header"
        raise ChainError(
            f"{child.path}: parent {child.header.parent_uuid} not found (tried {tried})"
        )
    # The first existing candidate with the right UUID wins (an absolute XAPI path may name
    # another file on this host); failing that, the first one, which may be mid-merge.
    for candidate in existing[1:]:
        try:
            if footer_uuid(candidate) == child.header.parent_uuid:
                existing = [candidate]
                break
        except (OSError, VhdFormatError):
            continue
    parent = open_vhd(existing[0])
    if parent.uuid == child.header.parent_uuid:
        return parent
    merge = find_finalizing_merge(parent.path, parent.uuid, child.header.parent_uuid)
    if merge is not None and _skip_merged_children(layers, merge.children, parent):
        return parent
    parent.close()
    raise ChainError(
        f"{child.path}: header names parent UUID {child.header.parent_uuid}, but "
        f"{existing[0]} has footer UUID {parent.uuid} (wrong parent file)"
    )


def _skip_merged_children(layers: list[VhdFile], children: list[str], parent: VhdFile) -> bool:
    """Drop from ``layers`` the children an interrupted merge already folded into ``parent``.

    Between the moment a merged parent takes its newest child's identity and the rename over
    that child's name, the old children still name the parent by its old UUID. The parent
    already holds all their data, so the chain reads the same through it (merge.py).
    """
    count = len(children)
    tail = layers[-count:] if len(layers) >= count else []
    if [layer.path.name for layer in reversed(tail)] != children:
        return False
    if tail[0].uuid != parent.uuid:
        return False
    for layer in tail:
        layer.close()
    del layers[-count:]
    return True
