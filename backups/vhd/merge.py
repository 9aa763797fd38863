"""Fold one child, or a run of children, into their parent in place; resumable.

Why the chain never reads differently, whatever moment the process dies:

* the parent only receives sectors its children hold, and the children still override them;
* data is written and flushed before the bitmaps and BAT entries that make it visible;
* a new block goes where the footer was, after a copy of the footer was written past it, so
  the file always ends with a valid footer;
* the merged file is one blktap accepts (docs/vhd.md §12.1): before any data is copied, the
  parent gets a batmap right after a BAT large enough for the result (blocks in the way are
  copied to the end and relinked first), and only then does its footer say ``tap`` 1.3;
* the state file (``.<parent>.merge.json``) says what is merged; ``open_chain`` accepts the
  one short window where the parent already carries the newest child's UUID but has not yet
  been renamed over it (the old children then name a UUID that moved);
* the rename over the newest child's name is atomic, and the other children are deleted
  only after it.

Cost is proportional to the children's blocks: only their allocated blocks are read, copied
and accounted for, never the whole disk.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .chain import Chain, compose_block, open_chain
from .errors import MergeError
from .fields import CREATOR_TAP, TAP_CREATOR_VERSION, DiskType, blktap_geometry, ceil_div
from .fileio import OS_IO, VhdIO, unlink_quietly
from .footer import FOOTER_SIZE
from .inplace import ParentWriter
from .mergestate import BLOCKS, FINALIZE, MergeState, state_path, states_in
from .vhdfile import VhdFile, footer_uuid, open_vhd

#: Bytes copied between two flushes (and state file updates).
DEFAULT_BATCH_BYTES = 256 * 1024 * 1024

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MergeResult:
    """The merged file (now named as the newest child) and what the merge did."""

    path: Path
    merged_blocks: int
    resumed: bool


def merge(
    children: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: Progress | None = None,
    io: VhdIO = OS_IO,
) -> MergeResult:
    """Merge ``children`` (one file, or consecutive files oldest first) into their parent.

    If an interrupted merge ending at the same newest child left a state file, it is resumed
    instead. The merged parent takes the newest child's UUID, time stamp, size and name.
    Every change goes through ``io`` (the I/O seam, ``fileio.py``).
    """
    if isinstance(children, (str, os.PathLike)):
        paths = [Path(children)]
    else:
        paths = [Path(child) for child in children]
    if not paths:
        raise MergeError("nothing to merge: no child given")
    directory = paths[-1].parent
    for _path, state in states_in(directory, io):
        if state.children[-1] == paths[-1].name:
            return _Merger(directory, state, True, batch_bytes, progress, io).run()
    return _Merger.start(paths, batch_bytes, progress, io).run()


def resume_merges(
    directory: str | os.PathLike,
    *,
    batch_bytes: int = DEFAULT_BATCH_BYTES,
    progress: Progress | None = None,
    io: VhdIO = OS_IO,
) -> list[MergeResult]:
    """Finish every interrupted merge of a directory (the clean-up pass calls this)."""
    directory = Path(directory)
    return [
        _Merger(directory, state, True, batch_bytes, progress, io).run()
        for _path, state in states_in(directory, io)
    ]


class _Merger:
    """One merge, described by its state; ``run`` carries it on from wherever it stopped."""

    def __init__(
        self,
        directory: Path,
        state: MergeState,
        resumed: bool,
        batch_bytes: int,
        progress: Progress | None,
        io: VhdIO = OS_IO,
    ) -> None:
        self.directory = directory
        self.state = state
        self.resumed = resumed
        self.batch_bytes = batch_bytes
        self.progress = progress
        self.io = io
        self.parent_path = directory / state.parent
        self.newest_path = directory / state.children[-1]
        self._chain: Chain | None = None

    @classmethod
    def start(
        cls, paths: list[Path], batch_bytes: int, progress: Progress | None, io: VhdIO
    ) -> _Merger:
        """Check the files form one chain ending in a parent we can write, save the state."""
        directory = paths[-1].parent
        chain = open_chain(paths[-1])
        try:
            state = cls._describe(chain, paths, directory)
            ours = {state.parent, *state.children}
            for path, other in states_in(directory, io):
                if ours & {other.parent, *other.children}:
                    # Its files would change under it: finish it first (resume_merges).
                    raise MergeError(
                        f"{path}: an interrupted merge of {', '.join(other.children)} into "
                        f"{other.parent} involves the same files; resume it first"
                    )
            state.save(directory, first=True, io=io)
        except BaseException:
            chain.close()
            raise
        merger = cls(directory, state, False, batch_bytes, progress, io)
        merger._chain = chain  # already opened and checked: run() needs it, do not reopen
        return merger

    @staticmethod
    def _describe(chain: Chain, paths: list[Path], directory: Path) -> MergeState:
        count = len(paths)
        layers = chain.layers[:count][::-1]
        names = [layer.path.name for layer in layers]
        if names != [path.name for path in paths] or any(
            layer.path.parent.resolve() != directory.resolve() for layer in layers
        ):
            raise MergeError(
                f"{', '.join(map(str, paths))} are not consecutive files of one chain, "
                f"oldest first (the chain has "
                f"{', '.join(str(layer.path) for layer in chain.layers[::-1])})"
            )
        if len(chain.layers) <= count:
            raise MergeError(f"{paths[0]}: has no parent to merge into")
        parent = chain.layers[count]
        if parent.path.parent.resolve() != directory.resolve():
            raise MergeError(
                f"{parent.path}: a parent must be in its children's directory to be merged"
            )
        if parent.disk_type == DiskType.FIXED:
            raise MergeError(f"{parent.path}: merging into a fixed disk is not supported")
        return MergeState(
            parent=parent.path.name,
            children=names,
            parent_uuid=str(parent.uuid),
            children_uuids=[str(layer.uuid) for layer in layers],
        )

    # -- steps ----------------------------------------------------------------------------

    def run(self) -> MergeResult:
        """Steps: copy blocks (resumable) → batmap → identity → rename → delete the rest."""
        try:
            return self._run()
        finally:
            if self._chain is not None:
                self._chain.close()

    def _run(self) -> MergeResult:
        """The steps, each recognised on a resume by what the files say.

        Flushes: the blocks and the identity are flushed by ``ParentWriter``; the rename over
        the newest child's name is made durable (a folder flush) before the older children go,
        and their removal (with a state save's leftover) before the state file goes, since until then the state file is what
        tells a resume to remove them. The state file's own removal is not flushed: if a power
        loss brings it back, the next resume finds the merge done and removes it
        (``_check_already_renamed``).
        """
        state, io = self.state, self.io
        if self.parent_path.exists():
            current = str(footer_uuid(self.parent_path))
            if current == state.parent_uuid:
                self._fold()
            elif current == state.child_uuid:
                # Only the last step gives the parent that UUID, and the newest child still
                # carries it until the rename: anything else is not this merge's window.
                if self.newest_path.exists() and str(footer_uuid(self.newest_path)) != current:
                    raise MergeError(
                        f"{self.parent_path}: carries UUID {current}, which the merge state "
                        f"gives the merged file, but {self.newest_path.name} is not that file; "
                        "the files changed since the merge started"
                    )
                self._copy_footer_to_front()
            else:
                raise MergeError(
                    f"{self.parent_path}: footer UUID is {current}, but the merge state "
                    f"expects {state.parent_uuid} (or {state.child_uuid} once merged); "
                    "the file changed since the merge started"
                )
            io.rename(self.parent_path, self.newest_path)
            io.fsync_dir(self.directory)
        else:
            self._check_already_renamed()
        done = state_path(self.parent_path)
        removed = [
            unlink_quietly(io, path)
            for path in [
                *(self.directory / name for name in state.children[:-1]),
                done.with_name(done.name + ".tmp"),  # a save cut short
            ]
        ]
        if any(removed):
            # Gone for good before the state file that says they are to go.
            io.fsync_dir(self.directory)
        unlink_quietly(io, done)
        return MergeResult(self.newest_path, state.merged_blocks, self.resumed)

    def _open_checked(self) -> Chain:
        """The chain from the newest child, checked against the UUIDs in the state."""
        chain, self._chain = self._chain, None
        if chain is None:
            chain = open_chain(self.newest_path)
        count = len(self.state.children)
        layers = chain.layers
        uuids = [str(layer.uuid) for layer in layers[: count + 1]]
        expected = [*self.state.children_uuids[::-1], self.state.parent_uuid]
        names = [layer.path.name for layer in layers[: count + 1]]
        if uuids != expected or names != [*self.state.children[::-1], self.state.parent]:
            chain.close()
            raise MergeError(
                f"{self.newest_path}: chain is {names} with UUIDs {uuids}, but the merge state "
                f"records {[*self.state.children[::-1], self.state.parent]} with {expected}"
            )
        return chain

    def _fold(self) -> None:
        """Copy the children's blocks into the parent, then give it the newest identity.

        The chain and the parent are opened once for both steps: with a 2 TiB disk each open
        reads a 4 MiB BAT, and that must not be paid again and again.
        """
        count = len(self.state.children)
        with (
            self._open_checked() as chain,
            ParentWriter(chain.layers[count], self.io) as target,
        ):
            children = chain.layers[:count]
            needed = ceil_div(chain.size, chain.block_size)
            merged = sorted(
                index
                for index in {index for child in children for index in child.allocated_blocks()}
                if index < needed
            )
            if self.state.step == BLOCKS:
                self._copy_blocks(children, merged, needed, target)
            self._finalize(children, merged, target)

    def _copy_blocks(
        self, children: list[VhdFile], merged: list[int], needed: int, target: ParentWriter
    ) -> None:
        state = self.state
        target.prepare(needed)
        target.reserve(
            sum(1 for index in merged if index >= state.next_block and not target.has(index))
        )
        pending = 0
        for index in merged:
            if index < state.next_block:
                continue
            owners = [child for child in children if child.has_block(index)]
            mask, data = compose_block(owners, index)
            pending += target.stage(index, mask, data)
            state.next_block = index + 1
            state.merged_blocks += 1
            if pending >= self.batch_bytes:
                target.commit()
                state.save(self.directory, io=self.io)
                pending = 0
                if self.progress:
                    self.progress(state.merged_blocks, len(merged))
        target.commit()
        # Not saved: a resume re-copies the last batch at worst, which is idempotent, and the
        # finalize step is recognised by the parent's UUID (find_finalizing_merge).
        state.step = FINALIZE
        if self.progress:
            self.progress(state.merged_blocks, len(merged))

    def _finalize(self, children: list[VhdFile], merged: list[int], target: ParentWriter) -> None:
        """Batmap, then the newest child's identity in the footer (end first, then copy).

        The geometry is the one of the new size: the child's may be qemu's largest one, which
        blktap refuses, and with creator ``tap`` no reader takes the size from it.
        """
        newest = children[0]
        size = newest.footer.current_size
        target.update_batmap(merged, size)
        footer = target.footer.replace(
            uuid=newest.uuid,
            timestamp=newest.footer.timestamp,
            current_size=size,
            original_size=newest.footer.original_size,
            geometry=blktap_geometry(size),
            creator_app=CREATOR_TAP,
            creator_version=TAP_CREATOR_VERSION,
        )
        target.write_footer(footer)

    def _copy_footer_to_front(self) -> None:
        handle = self.io.open_rw(self.parent_path)
        try:
            size = handle.size()
            handle.pwrite(handle.pread(FOOTER_SIZE, size - FOOTER_SIZE), 0)
            handle.datasync()
        finally:
            handle.close()

    def _check_already_renamed(self) -> None:
        """The parent is gone: only fine if the newest name already holds the merged file."""
        state = self.state
        if not self.newest_path.exists():
            raise MergeError(
                f"{self.parent_path} and {self.newest_path} are both missing: the merge "
                "cannot be finished"
            )
        with open_vhd(self.newest_path) as newest:
            linked = newest.header.parent_uuid if newest.header else None
            ours = {state.parent_uuid, *state.children_uuids}
            if str(newest.uuid) != state.child_uuid or (
                newest.disk_type == DiskType.DIFFERENCING and str(linked) in ours
            ):
                raise MergeError(
                    f"{self.parent_path} is missing and {self.newest_path} is not the merged "
                    "file: the merge cannot be finished"
                )
