"""A merge writes and flushes the copied data before the bitmaps and BAT entries that make it
visible (backups/vhd/merge.py, backups/vhd/inplace.py): otherwise a crash could leave the parent
linking blocks whose data never reached the disk.

Every write and flush made on the parent is recorded, with the step that made it: copying data
(``stage``) or linking it (``commit``). Whatever the batch size, no linking write may come
after a data write without a flush in between.
"""

from __future__ import annotations

import os
import random
import uuid

import pytest

import backups.vhd as vhd
from backups.vhd.inplace import ParentWriter

from .histories import read_all

BS = 2 * 2**20


@pytest.fixture
def syscalls(monkeypatch):
    """``[(step, call), …]`` for every pwrite, pwritev and fdatasync made during a merge."""
    events: list[tuple[str, str]] = []
    step = ["outside"]
    for name in ("pwrite", "pwritev", "fdatasync"):
        real = getattr(os, name)

        def record(*args, _real=real, _name=name):
            events.append((step[0], "flush" if _name == "fdatasync" else "write"))
            return _real(*args)

        monkeypatch.setattr(os, name, record)
    for method in ("stage", "commit"):
        real = getattr(ParentWriter, method)

        def within(self, *args, _real=real, _step=method):
            step[0] = _step
            try:
                return _real(self, *args)
            finally:
                step[0] = "outside"

        monkeypatch.setattr(ParentWriter, method, within)
    return events


def unflushed_links(events: list[tuple[str, str]]) -> int:
    """How many linking writes came while copied data was not yet flushed."""
    dirty, bad = False, 0
    for step, call in events:
        if call == "flush":
            dirty = False
        elif step == "stage":
            dirty = True
        elif step == "commit" and dirty:
            bad += 1
    return bad


@pytest.mark.parametrize("batch_bytes", [1, 3 * BS, 256 * 2**20])
def test_copied_data_is_flushed_before_it_is_linked(tmp_path, syscalls, batch_bytes):
    rng = random.Random(7)
    parent = uuid.uuid4()
    held = {0: (None, rng.randbytes(BS)), 3: (None, rng.randbytes(BS))}
    vhd.write_vhd(tmp_path / "parent.vhd", held, size=8 * BS, uuid=parent)
    # New blocks for the parent (1, 5, 6) and a block it already has (3, partly).
    changed = {index: (None, rng.randbytes(BS)) for index in (1, 5, 6)}
    changed[3] = (bytes([0xF0]) + bytes(511), rng.randbytes(BS))  # its first 4 sectors
    vhd.write_vhd(
        tmp_path / "child.vhd",
        changed,
        size=8 * BS,
        uuid=uuid.uuid4(),
        parent=vhd.ParentLink(parent, "parent.vhd"),
    )
    expected = read_all(tmp_path / "child.vhd")
    syscalls.clear()

    vhd.merge(tmp_path / "child.vhd", batch_bytes=batch_bytes)

    assert read_all(tmp_path / "child.vhd") == expected
    assert any(step == "stage" for step, _ in syscalls)
    assert any(step == "commit" and call == "write" for step, call in syscalls)
    assert unflushed_links(syscalls) == 0


def test_the_check_would_see_a_link_written_before_the_flush():
    assert unflushed_links([("stage", "write"), ("commit", "flush"), ("commit", "write")]) == 0
    assert unflushed_links([("stage", "write"), ("commit", "write"), ("commit", "flush")]) == 1
