"""SIGKILL a merging child process at every write, flush and rename; resume; compare bytes.

The child (a fork) counts the merge's file operations and kills itself at operation N; a large
data write is torn in half first, as a real kill mid-write would leave it. After each kill the
chain must read exactly as before, and so again after a second kill during the resume and
after the final resume, which must leave the merged file under the newest child's name.
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil
import signal
import uuid
from pathlib import Path

import pytest

import backups.vhd as vhd

from .histories import History, Layer, read_all, unsound, write_history
from .vhdkit import build_vhd, reference_read

BS = 16384
SPB = BS // 512


def history() -> History:
    """P (full) ← C1 (partial bitmaps) ← C2 (whole blocks) ← G (partial), 12 blocks."""
    return History(
        size=12 * BS - 1024,
        block_size=BS,
        layers=[
            Layer([(0, 3 * SPB), (8 * SPB, 5)], whole=True),
            Layer([(5, 7), (2 * SPB + 1, SPB), (9 * SPB + 3, 2), (11 * SPB, 20)], whole=False),
            Layer([(SPB + 2, 3), (6 * SPB, 2 * SPB)], whole=True),
            Layer([(30, 4), (10 * SPB, 9)], whole=False),
        ],
    )


def grown_history() -> History:
    """The same, but the disk grew between P and C1 (the merge must grow P's BAT)."""
    base = history()
    base.layers[0] = Layer([(0, 2 * SPB)], whole=True)
    return base


def make_room_chain(directory: Path) -> tuple[list[Path], list[bytes]]:
    """A chain whose merges must make room after the parent's BAT (docs/vhd.md §12.1).

    P is in XAPI's layout (``caml``, BAT at 2048 followed at once by a block, no batmap) and
    smaller than C1; C2 grows the disk past 128 blocks, so merging it into C1 (differencing,
    locators right after its batmap) grows C1's BAT by a sector and moves those locators.
    """
    rng = random.Random(11)
    sizes = [4 * BS - 1024, 12 * BS - 1024, 200 * BS - 512, 200 * BS - 512]
    writes = [
        {0: None, 1: None, 3: None},
        {1: 0xF0, 2: None, 9: 0x0F},
        {0: 0xAA, 150: None, 199: None},
        {2: None, 150: 0x80, 160: 0x01},
    ]
    full = b"\xff" * 512
    parent = uuid.uuid4()
    (directory / "20260101T000000Z.vhd").write_bytes(
        build_vhd(
            sizes[0],
            {index: (full, rng.randbytes(BS)) for index in writes[0]},
            block_size=BS,
            unique=parent,
        )
    )
    paths = [directory / "20260101T000000Z.vhd"]
    for level in range(1, 4):
        blocks = {
            index: (
                None if byte is None else (bytes([byte]) * (SPB // 8)).ljust(512, b"\0"),
                rng.randbytes(BS),
            )
            for index, byte in writes[level].items()
        }
        path = directory / f"2026010{level + 1}T000000Z.vhd"
        unique = uuid.uuid4()
        link = vhd.ParentLink(parent, paths[-1].name)
        vhd.write_vhd(path, blocks, size=sizes[level], uuid=unique, parent=link, block_size=BS)
        parent = unique
        paths.append(path)
    return paths, [reference_read(paths[level::-1]) for level in range(4)]


def finish(directory: Path, parent: str, children: list[str]) -> None:
    """What the clean-up pass does: resume a started merge, else start it if not done.

    A finished merge renamed the parent away; a merge killed before its state file was
    complete left the parent in place and must start again.
    """
    if not vhd.resume_merges(directory) and (directory / parent).exists():
        vhd.merge([directory / name for name in children], batch_bytes=2 * BS)


def run_killed(directory: Path, parent: str, children: list[str], kill_at: int | None) -> bool:
    """Merge (or resume) in a forked child killed at operation ``kill_at``; True if done."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            if kill_at is not None:
                _arm(kill_at)
            finish(directory, parent, children)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return False
    assert os.WEXITSTATUS(status) == 0, "the merge failed in the child"
    return True


def _arm(kill_at: int) -> None:
    """Count file operations; at number ``kill_at`` (tear a big write and) die."""
    count = [0]

    def wrap(owner, name):
        real = getattr(owner, name)

        def operation(*args, **kwargs):
            count[0] += 1
            if count[0] == kill_at:
                if name == "pwrite" and len(args[1]) > 4096:
                    real(args[0], bytes(args[1])[: len(args[1]) // 2], args[2])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)

        setattr(owner, name, operation)

    for name in ("pwrite", "pwritev", "fdatasync", "fsync", "ftruncate"):
        wrap(os, name)
    for name in ("replace", "unlink"):
        wrap(pathlib.Path, name)


def histories_of(make: object) -> object:
    return lambda directory: write_history(directory, make())


@pytest.mark.parametrize(
    ("make_chain", "first", "last"),
    [
        (histories_of(history), 1, 2),
        (histories_of(grown_history), 1, 2),
        (histories_of(history), 2, 2),
        (histories_of(grown_history), 1, 1),
        (make_room_chain, 1, 1),
        (make_room_chain, 2, 2),
    ],
    ids=["history-1-2", "grown-1-2", "history-2-2", "grown-1-1", "xapi-parent", "bat-grows"],
)
def test_killed_merges_never_change_what_the_chain_reads(tmp_path, make_chain, first, last):
    original = tmp_path / "original"
    original.mkdir()
    paths, expected = make_chain(original)
    names = [path.name for path in paths]
    newest, parent, children = names[-1], names[first - 1], names[first : last + 1]
    with vhd.open_vhd(paths[last]) as merged_child:
        identity = merged_child.uuid
    rng = random.Random(7)
    kill_at, finished = 1, False
    while not finished:
        work = tmp_path / f"kill{kill_at}"
        shutil.copytree(original, work)
        finished = run_killed(work, parent, children, kill_at)
        assert read_all(work / newest) == expected[-1], f"after a kill at operation {kill_at}"
        if not finished and rng.random() < 0.5:
            run_killed(work, parent, children, rng.randrange(1, 40))
            assert read_all(work / newest) == expected[-1], f"after a second kill ({kill_at})"
        finish(work, parent, children)
        kept = [*names[: first - 1], *names[last:]]
        assert sorted(p.name for p in work.iterdir()) == kept
        assert read_all(work / newest) == expected[-1]
        assert read_all(work / names[last]) == expected[last]
        with vhd.open_chain(work / newest) as chain:
            assert chain.layers[len(names) - 1 - last].uuid == identity
            assert len(chain.layers) == len(kept)
        assert unsound(work / newest) == []
        shutil.rmtree(work)
        kill_at += 1
    assert kill_at > 20  # the merge really went through many kill points


def test_a_garbled_first_state_file_is_dropped_and_the_merge_restarts(tmp_path):
    """A first save cut short (no byte of the parent written yet) must not block merges."""
    paths, expected = write_history(tmp_path, history())
    with vhd.open_vhd(paths[1]) as child:
        identity = child.uuid
    (tmp_path / f".{paths[0].name}.merge.json").write_text('{"parent": "2026')
    result = vhd.merge(paths[1])
    assert not result.resumed and result.path == paths[1]
    assert not paths[0].exists() and list(tmp_path.glob(".*")) == []
    with vhd.open_vhd(paths[1]) as merged:
        assert merged.uuid == identity
    assert read_all(paths[-1]) == expected[-1]
