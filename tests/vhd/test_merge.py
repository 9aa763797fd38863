"""Merging: identity and name of the result, growth, XAPI parents, resumption, refusals."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import uuid

import pytest

import backups.vhd as vhd
from backups.vhd.mergestate import state_path

from .histories import read_all
from .vhdkit import FULL, build_vhd

BS = 2 * 2**20


def block(rng: random.Random) -> bytes:
    return rng.randbytes(4096) * (BS // 4096)


def test_merge_takes_the_newest_childs_identity_size_and_name(tmp_path):
    rng = random.Random(1)
    parent_uuid, child_uuid = uuid.uuid4(), uuid.uuid4()
    vhd.write_vhd(tmp_path / "a.vhd", {0: (None, block(rng))}, size=3 * BS, uuid=parent_uuid)
    vhd.write_vhd(
        tmp_path / "b.vhd",
        {1: (None, block(rng)), 6: (None, block(rng))},
        size=8 * BS + 512,
        uuid=child_uuid,
        parent=vhd.ParentLink(parent_uuid, "a.vhd"),
        timestamp=4242,
    )
    expected = read_all(tmp_path / "b.vhd")
    vhd.merge(tmp_path / "b.vhd")
    assert [p.name for p in tmp_path.iterdir()] == ["b.vhd"]
    with vhd.open_vhd(tmp_path / "b.vhd") as merged:
        assert merged.uuid == child_uuid and merged.size == 8 * BS + 512
        assert merged.footer.timestamp == 4242 and merged.disk_type == vhd.DiskType.DYNAMIC
        assert merged.header.max_table_entries == 9  # the BAT grew with the disk
        assert merged.batmap is not None and merged.batmap.is_full(6)
    assert read_all(tmp_path / "b.vhd") == expected
    assert vhd.check_chain(tmp_path / "b.vhd") == []
    if shutil.which("qemu-img"):  # the merged file is dynamic: qemu-img can read it alone
        subprocess.run(
            [
                "qemu-img",
                "convert",
                "-f",
                "vpc",
                "-O",
                "raw",
                str(tmp_path / "b.vhd"),
                str(tmp_path / "b.raw"),
            ],
            check=True,
        )
        assert (tmp_path / "b.raw").read_bytes() == expected


def test_merge_into_a_xapi_written_parent_keeps_grandchildren_readable(tmp_path):
    rng = random.Random(2)
    base = uuid.uuid4()
    (tmp_path / "1.vhd").write_bytes(
        build_vhd(4 * BS, {0: (FULL, block(rng)), 3: (FULL, block(rng))}, unique=base)
    )
    mid, top = uuid.uuid4(), uuid.uuid4()
    half = b"\xff" * 256 + bytes(256)
    (tmp_path / "2.vhd").write_bytes(
        build_vhd(
            4 * BS,
            {0: (half, block(rng)), 1: (half, block(rng))},
            unique=mid,
            creator=b"tap\0",
            table_offset=1536,
            parent_uuid=base,
            parent_name="1.vhd",
        )
    )
    vhd.write_vhd(
        tmp_path / "3.vhd",
        {3: (None, block(rng))},
        size=4 * BS,
        uuid=top,
        parent=vhd.ParentLink(mid, "2.vhd"),
    )
    expected = read_all(tmp_path / "3.vhd")
    vhd.merge(tmp_path / "2.vhd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.vhd", "3.vhd"]
    assert read_all(tmp_path / "3.vhd") == expected
    with vhd.open_vhd(tmp_path / "2.vhd") as merged:
        assert merged.uuid == mid and merged.footer.creator_app == b"tap\0"
    assert vhd.check_chain(tmp_path / "3.vhd") == []


def test_merge_cost_follows_the_childs_blocks_not_the_disk(tmp_path, monkeypatch):
    rng = random.Random(3)
    size = 1024 * BS  # 2 GiB virtual, sparse
    parent = uuid.uuid4()
    vhd.write_vhd(tmp_path / "p.vhd", {5: (None, block(rng))}, size=size, uuid=parent)
    vhd.write_vhd(
        tmp_path / "c.vhd",
        {5: (None, block(rng)), 700: (None, block(rng))},
        size=size,
        parent=vhd.ParentLink(parent, "p.vhd"),
    )
    import os

    moved = []
    real_pread, real_pwrite = os.pread, os.pwrite
    monkeypatch.setattr(os, "pread", lambda fd, n, o: moved.append(n) or real_pread(fd, n, o))
    monkeypatch.setattr(
        os, "pwrite", lambda fd, d, o: moved.append(len(d)) or real_pwrite(fd, d, o)
    )
    result = vhd.merge(tmp_path / "c.vhd")
    assert result.merged_blocks == 2
    assert sum(moved) < 12 * BS  # a few block copies and the metadata, never 2 GiB


def test_resume_from_the_state_file(tmp_path):
    rng = random.Random(4)
    parent = uuid.uuid4()
    vhd.write_vhd(tmp_path / "p.vhd", {0: (None, block(rng))}, size=4 * BS, uuid=parent)
    vhd.write_vhd(
        tmp_path / "c.vhd",
        {i: (None, block(rng)) for i in range(4)},
        size=4 * BS,
        parent=vhd.ParentLink(parent, "p.vhd"),
    )
    expected = read_all(tmp_path / "c.vhd")

    class Stop(Exception):
        pass

    def stop_after_two(done, total):
        if done >= 2:
            raise Stop

    with pytest.raises(Stop):
        vhd.merge(tmp_path / "c.vhd", batch_bytes=1, progress=stop_after_two)
    state = json.loads(state_path(tmp_path / "p.vhd").read_text())
    assert state["step"] == "blocks" and state["next_block"] == 2
    assert state["children"] == ["c.vhd"] and state["parent"] == "p.vhd"
    assert read_all(tmp_path / "c.vhd") == expected
    result = vhd.merge(tmp_path / "c.vhd")
    assert result.resumed and result.merged_blocks == 4
    assert [p.name for p in tmp_path.iterdir()] == ["c.vhd"]
    assert read_all(tmp_path / "c.vhd") == expected


def test_resume_refuses_a_parent_that_changed(tmp_path):
    parent = uuid.uuid4()
    vhd.write_vhd(tmp_path / "p.vhd", {}, size=BS, uuid=parent)
    vhd.write_vhd(
        tmp_path / "c.vhd", {0: (None, b"x" * BS)}, size=BS, parent=vhd.ParentLink(parent, "p.vhd")
    )
    with pytest.raises(RuntimeError):
        vhd.merge(tmp_path / "c.vhd", progress=lambda *_: (_ for _ in ()).throw(RuntimeError))
    vhd.write_vhd(tmp_path / "p.vhd", {}, size=BS)  # replaced behind the merge's back
    with pytest.raises(
        vhd.MergeError, match=r"p\.vhd: footer UUID is .* but the merge state expects"
    ):
        vhd.merge(tmp_path / "c.vhd")


def test_merge_refuses_a_full_file_and_non_consecutive_children(tmp_path):
    a = uuid.uuid4()
    vhd.write_vhd(tmp_path / "a.vhd", {}, size=BS, uuid=a)
    with pytest.raises(vhd.MergeError, match=r"a\.vhd: has no parent to merge into"):
        vhd.merge(tmp_path / "a.vhd")
    b, c = uuid.uuid4(), uuid.uuid4()
    vhd.write_vhd(tmp_path / "b.vhd", {}, size=BS, uuid=b, parent=vhd.ParentLink(a, "a.vhd"))
    vhd.write_vhd(tmp_path / "c.vhd", {}, size=BS, uuid=c, parent=vhd.ParentLink(b, "b.vhd"))
    with pytest.raises(vhd.MergeError, match="are not consecutive files of one chain"):
        vhd.merge([tmp_path / "c.vhd", tmp_path / "b.vhd"])


def test_merged_chain_agrees_with_libvhdi(tmp_path):
    pyvhdi = pytest.importorskip("pyvhdi")
    rng = random.Random(5)
    ids = [uuid.uuid4() for _ in range(4)]
    for level in range(4):
        blocks = {i: (None, block(rng)) for i in range(5) if rng.random() < 0.5}
        link = vhd.ParentLink(ids[level - 1], f"{level - 1}.vhd") if level else None
        vhd.write_vhd(tmp_path / f"{level}.vhd", blocks, size=5 * BS, uuid=ids[level], parent=link)
    expected = read_all(tmp_path / "3.vhd")
    vhd.merge([tmp_path / "1.vhd", tmp_path / "2.vhd"])
    handles = []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.vhd", "3.vhd"]  # 0 took 2's name
    for name in ("3.vhd", "2.vhd"):
        handle = pyvhdi.file()
        handle.open(str(tmp_path / name))
        handles.append(handle)
    assert handles[1].disk_type == 3
    handles[0].set_parent(handles[1])  # libvhdi checks the parent's UUID
    assert handles[0].read_buffer_at_offset(5 * BS, 0) == expected


def test_a_new_merge_refuses_files_of_an_interrupted_one(tmp_path):
    ids = [uuid.uuid4() for _ in range(3)]
    for level in range(3):
        link = vhd.ParentLink(ids[level - 1], f"{level - 1}.vhd") if level else None
        vhd.write_vhd(
            tmp_path / f"{level}.vhd",
            {level: (None, b"z" * BS)},
            size=3 * BS,
            uuid=ids[level],
            parent=link,
        )
    with pytest.raises(RuntimeError):
        vhd.merge(tmp_path / "1.vhd", progress=lambda *_: (_ for _ in ()).throw(RuntimeError))
    with pytest.raises(
        vhd.MergeError,
        match=r"\.0\.vhd\.merge\.json: an interrupted merge of "
        r"1\.vhd into 0\.vhd involves the same files; resume it first",
    ):
        vhd.merge(tmp_path / "2.vhd")
    assert [result.path.name for result in vhd.resume_merges(tmp_path)] == ["1.vhd"]
    vhd.merge(tmp_path / "2.vhd")
    assert read_all(tmp_path / "2.vhd") == b"z" * 3 * BS


def test_check_names_a_merge_interrupted_before_its_rename(tmp_path, monkeypatch):
    parent = uuid.uuid4()
    vhd.write_vhd(tmp_path / "p.vhd", {0: (None, b"p" * BS)}, size=2 * BS, uuid=parent)
    vhd.write_vhd(
        tmp_path / "c.vhd",
        {1: (None, b"c" * BS)},
        size=2 * BS,
        parent=vhd.ParentLink(parent, "p.vhd"),
    )
    expected = read_all(tmp_path / "c.vhd")

    def crash(self, target):
        raise OSError("power cut")

    monkeypatch.setattr(type(tmp_path), "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        vhd.merge(tmp_path / "c.vhd")
    monkeypatch.undo()
    assert read_all(tmp_path / "c.vhd") == expected  # the window open_chain accepts
    assert [str(f) for f in vhd.check_chain(tmp_path / "c.vhd")] == [
        f"{tmp_path / 'p.vhd'}: an interrupted merge already gave this file the identity of "
        f"c.vhd; finish it with `python -m backups.vhd merge {tmp_path / 'c.vhd'}`"
    ]
    vhd.merge(tmp_path / "c.vhd")
    assert vhd.check_chain(tmp_path / "c.vhd") == []
    assert read_all(tmp_path / "c.vhd") == expected
