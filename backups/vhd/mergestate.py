"""The small state file that makes a merge resumable: ``.<parent name>.merge.json``.

It lives next to the parent (as Xen Orchestra's does) and records which files take part, their
UUIDs (so a resume never applies to different files), the step and the next block to copy.
Later saves replace it atomically (temporary file, fsync, rename), so it is a whole JSON.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import MergeError
from .fileio import OS_IO, VhdIO, unlink_quietly

STATE_VERSION = 1
BLOCKS = "blocks"
FINALIZE = "finalize"


@dataclass
class MergeState:
    """What an interrupted merge needs to carry on. Names are file names in one directory."""

    parent: str
    children: list[str]
    parent_uuid: str
    children_uuids: list[str]
    step: str = BLOCKS
    next_block: int = 0
    merged_blocks: int = 0
    version: int = STATE_VERSION
    extra: dict = field(default_factory=dict)

    @property
    def child_uuid(self) -> str:
        """The identity the merged file takes: the newest child's."""
        return self.children_uuids[-1]

    def save(self, directory: Path, *, first: bool = False, io: VhdIO = OS_IO) -> None:
        """Write the state durably; later saves replace it atomically.

        The first save creates the file directly (one rename less): if it is cut short, no
        byte of the parent was written yet, and ``states_in`` drops the unreadable file. Its
        name is made durable (the folder is flushed) before the merge writes to the parent:
        once the parent takes its child's identity, only this file says why the chain's link
        moved (``find_finalizing_merge``), so it must survive a power loss.
        """
        target = state_path(directory / self.parent)
        temp = target if first else target.with_name(target.name + ".tmp")
        if not first:
            unlink_quietly(io, temp)  # a save cut short before its rename
        handle = io.create(temp)
        try:
            handle.write(json.dumps(asdict(self)).encode())
            handle.fsync()
        finally:
            handle.close()
        if first:
            io.fsync_dir(directory)
        else:
            # No folder flush: a later save lost to a power loss only makes the resume copy a
            # few blocks again. Its content was flushed before the rename, so the name never
            # points at a garbled state.
            io.rename(temp, target)

    @classmethod
    def load(cls, path: Path) -> MergeState:
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STATE_VERSION:
                raise MergeError(f"{path}: merge state version {data.get('version')} is unknown")
            return cls(**data)
        except (ValueError, TypeError) as error:
            raise MergeError(f"{path}: merge state is unreadable ({error})") from error


def state_path(parent: Path) -> Path:
    return parent.with_name(f".{parent.name}.merge.json")


def states_in(directory: Path, io: VhdIO = OS_IO) -> list[tuple[Path, MergeState]]:
    """Every merge state file of a directory.

    An unreadable one can only be a first save cut short, before the parent was touched
    (``MergeState.save``); even if a disk fault garbled a later one, a merge that has not
    changed the parent's identity is safe to start again (it copies the same sectors). So it
    is removed, and the merge it described starts afresh when asked.
    """
    found = []
    for path in sorted(directory.glob(".*.merge.json")):
        try:
            found.append((path, MergeState.load(path)))
        except MergeError:
            unlink_quietly(io, path)
    return found


def find_finalizing_merge(
    parent: Path, parent_uuid: uuidlib.UUID, expected_uuid: uuidlib.UUID
) -> MergeState | None:
    """The merge that gave ``parent`` its newest child's UUID, if one is being finalized.

    Only the last step of a merge gives the parent that UUID, so the UUIDs alone identify the
    window; the step recorded may still say "blocks" (it is not saved again at the end).

    Used by ``open_chain`` when a child's parent UUID no longer matches: that is expected in
    the short window between the identity change and the rename that ends a merge.
    """
    path = state_path(parent)
    if not path.is_file():
        return None
    try:
        state = MergeState.load(path)
    except MergeError:
        return None
    if (
        state.parent == parent.name
        and state.parent_uuid == str(expected_uuid)
        and state.child_uuid == str(parent_uuid)
    ):
        return state
    return None
