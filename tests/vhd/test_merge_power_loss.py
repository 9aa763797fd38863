"""Merges and their resumes under power loss: every state the recorded flushes allow (the
model of tests/powerloss.py) reads exactly as the chain did before the merge, and finishing the
merge from there gives the merged files. A merge into a parent in XAPI's layout (room made for
blktap's batmap) and one whose parent's BAT must grow take every step of ``inplace.py``.

Some crash states are then recovered while recording again, and the states a second power loss
during that recovery allows are checked too (a resume reclaims the room an interrupted merge
left, with flushes of its own).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import backups.vhd as vhd
from tests.powerloss import NoSyncFs, RecordingFs, Trace

from .histories import read_all, write_history
from .test_merge_kill import grown_history, history, make_room_chain

BS = 16384


def chains(directory: Path, which: str):
    if which == "xapi-parent":
        return make_room_chain(directory)
    return write_history(directory, history() if which == "history" else grown_history())


def finish(directory: Path, parent: str, children: list[str]) -> None:
    """The recovery: resume a started merge, else start it if not done (no flushes: the
    state is thrown away after its checks)."""
    io = NoSyncFs()
    if not vhd.resume_merges(directory, io=io) and (directory / parent).exists():
        vhd.merge([directory / name for name in children], batch_bytes=2 * BS, io=io)


def check_state(root: Path, names: list[str], expected: list[bytes], first: int, last: int):
    newest = names[-1]
    assert read_all(root / newest) == expected[-1], "reads differently before recovery"
    finish(root, names[first - 1], names[first : last + 1])
    kept = [*names[: first - 1], *names[last:]]
    assert sorted(p.name for p in root.iterdir()) == kept
    assert read_all(root / newest) == expected[-1]
    assert read_all(root / names[last]) == expected[last]


def replay(trace: Trace, tmp_path: Path, label: str, check) -> list[Path]:
    """Check every crash state; return the roots of those left mid-merge (a state file)."""
    mid = []
    for number, state in enumerate(trace.crash_states(exhaustive=6)):
        how, tree = state.how, state.tree
        root = tmp_path / f"{label}-{number}"
        tree.materialize(root)
        if list(root.glob(".*.merge.json")):
            mid.append(tmp_path / f"{label}-{number}-copy")
            tree.materialize(mid[-1])
        try:
            check(root)
        except (AssertionError, vhd.VhdError) as error:
            raise AssertionError(f"{label}: {how}: {error}") from None
    return mid


@pytest.mark.parametrize(
    ("which", "first", "last"),
    [("history", 1, 2), ("grown", 1, 1), ("xapi-parent", 1, 1), ("xapi-parent", 2, 2)],
    ids=["history-1-2", "grown-1-1", "xapi-parent", "bat-grows"],
)
def test_a_power_loss_anywhere_in_a_merge_or_its_resume(tmp_path, which, first, last):
    original = tmp_path / "original"
    original.mkdir()
    paths, expected = chains(original, which)
    names = [path.name for path in paths]
    fs = RecordingFs(original)
    vhd.merge([original / name for name in names[first : last + 1]], batch_bytes=2 * BS, io=fs)
    trace = fs.trace()
    assert any(op.kind == "fsync" for op in trace.ops)

    def check(root: Path) -> None:
        check_state(root, names, expected, first, last)

    mid = replay(trace, tmp_path, "merge", check)
    assert mid, "no crash state fell in the middle of the merge"
    # A second power loss while a resume recovers from the first.
    for number, root in enumerate(random.Random(5).sample(mid, min(2, len(mid)))):
        assert read_all(root / names[-1]) == expected[-1]
        again = RecordingFs(root)
        vhd.resume_merges(root, batch_bytes=2 * BS, io=again)
        replay(again.trace(), tmp_path, f"resume{number}", check)


def test_a_power_loss_while_a_vhd_is_written(tmp_path):
    """``VhdWriter``: the file appears under its name whole or not at all, and once ``close``
    returned it is there whatever the crash keeps."""
    directory = tmp_path / "original"
    directory.mkdir()
    rng = random.Random(3)
    blocks = {index: (None, rng.randbytes(BS)) for index in (0, 2, 3)}
    fs = RecordingFs(directory)
    vhd.write_vhd(directory / "disk.vhd", blocks, size=4 * BS, block_size=BS, io=fs)
    expected = read_all(directory / "disk.vhd")
    for number, state in enumerate(fs.trace().crash_states()):
        root = tmp_path / f"state-{number}"
        state.tree.materialize(root)
        names = sorted(path.name for path in root.iterdir() if not path.name.startswith("."))
        if state.returned:
            assert names == ["disk.vhd"], f"{state.how}: close returned, the file is gone"
        if names:
            assert read_all(root / "disk.vhd") == expected, state.how
