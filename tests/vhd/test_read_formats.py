"""Files from every kind of writer read right, checked against independent readers.

Oracles: qemu-img (dynamic files only), libvhdi's pyvhdi (full bitmaps, any chain depth) and
the sector-by-sector reference reader of vhdkit.py (partial bitmaps).
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

import backups.vhd as vhd
from backups.vhd.bitmap import from_mask
from tests import qemu_img

from .vhdkit import build_vhd, reference_read

MIB = 2**20
BS = 2 * MIB
SPB = BS // 512
FULL = b"\xff" * 512

needs_qemu = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img not installed")


def pyvhdi_read(paths: list[Path]) -> bytes:
    """Chain content through libvhdi, newest first (full bitmaps only, docs/vhd.md §11.2)."""
    pyvhdi = pytest.importorskip("pyvhdi")
    handles = []
    for path in paths:
        handle = pyvhdi.file()
        handle.open(str(path))
        handles.append(handle)
    for child, parent in itertools.pairwise(handles):
        child.set_parent(parent)
    return handles[0].read_buffer_at_offset(handles[0].media_size, 0)


def chain_bytes(path: Path) -> bytes:
    with vhd.open_chain(path) as chain:
        return b"".join(bytes(chunk) for chunk in chain.iter_raw())


def random_block(rng: random.Random) -> bytes:
    return rng.randbytes(1024) * (BS // 1024)


@needs_qemu
@pytest.mark.parametrize("size", [8 * MIB, 8 * MIB + 1536, 3 * MIB])
def test_reads_qemu_made_dynamic_files(tmp_path, size):
    rng = random.Random(size)
    raw = bytearray(size)
    raw[0:4096] = rng.randbytes(4096)
    raw[size - 5000 : size - 1000] = rng.randbytes(4000)
    (tmp_path / "disk.raw").write_bytes(raw)
    qemu_img.write_vhd(tmp_path / "disk.raw", tmp_path / "q.vhd")
    assert chain_bytes(tmp_path / "q.vhd") == raw
    with vhd.open_vhd(tmp_path / "q.vhd") as file:
        assert file.footer.creator_app == b"qem2" and file.header.table_offset == 1536
    # force_size writes the largest geometry, which blktap refuses and nobody here reads.
    findings = vhd.check_chain(tmp_path / "q.vhd")
    assert [(f.kind, f.severity) for f in findings] == [("geometry", "warning")]
    assert "exceeds" in findings[0].message and "(blktap: geometry too large" in findings[0].message


@needs_qemu
def test_reads_qemu_made_fixed_file(tmp_path):
    raw = random.Random(1).randbytes(3 * MIB + 512)
    (tmp_path / "disk.raw").write_bytes(raw)
    qemu_img.write_vhd(tmp_path / "disk.raw", tmp_path / "f.vhd", subformat="fixed")
    with vhd.open_chain(tmp_path / "f.vhd") as chain:
        assert chain.newest.disk_type == vhd.DiskType.FIXED
        assert chain.read(3 * MIB - 100, 612) == raw[3 * MIB - 100 :]
    assert chain_bytes(tmp_path / "f.vhd") == raw


def test_reads_xapi_style_full_and_delta(tmp_path):
    """creator caml, BAT at 2048, empty locator sector, absolute parent path, MacX locator."""
    rng = random.Random(2)
    size = 4 * BS + 4096
    blocks = {0: random_block(rng), 2: random_block(rng), 4: random_block(rng)}
    base = uuid.uuid4()
    full = build_vhd(size, {i: (FULL, d) for i, d in blocks.items()}, unique=base)
    (tmp_path / "full.vhd").write_bytes(full)
    delta_blocks = {2: random_block(rng), 3: random_block(rng)}
    delta = build_vhd(
        size,
        {i: (FULL, d) for i, d in delta_blocks.items()},
        parent_uuid=base,
        parent_name="/var/run/sr-mount/sr/full.vhd",
        macx_locator=True,
    )
    (tmp_path / "delta.vhd").write_bytes(delta)
    expected = bytearray(size)
    for index, data in {**blocks, **delta_blocks}.items():
        expected[index * BS : (index + 1) * BS] = data[: size - index * BS]
    assert chain_bytes(tmp_path / "delta.vhd") == expected
    assert pyvhdi_read([tmp_path / "delta.vhd", tmp_path / "full.vhd"]) == expected
    # XAPI's empty MacX locator is only a warning: the chain reads through the header.
    assert [str(f) for f in vhd.check_chain(tmp_path / "delta.vhd")] == [
        f"{tmp_path / 'delta.vhd'}: warning: parent locator 0 (MacX) is blank: it holds no data "
        "(blktap: invalid data length)"
    ]


def test_reads_partial_bitmaps_sector_precisely(tmp_path):
    """Bitmap bytes libvhdi misreads (0x80, 0xAA, 0x02, 0xF0) and unset sectors full of 0xAA."""
    rng = random.Random(3)
    size = 2 * BS
    parent_uuid = uuid.uuid4()
    parent_block = random_block(rng)
    parent = build_vhd(
        size,
        {0: (FULL, parent_block), 1: (FULL, random_block(rng))},
        creator=b"tap\0",
        table_offset=1536,
        unique=parent_uuid,
    )
    (tmp_path / "parent.vhd").write_bytes(parent)
    bitmap = bytearray(512)
    bitmap[0:4] = b"\x80\xaa\x02\xf0"
    bitmap[100] = 0xFF
    child_data = bytearray(b"\xaa" * BS)
    for sector in range(SPB):
        child_data[sector * 512 : sector * 512 + 2] = sector.to_bytes(2, "big")
    child = build_vhd(
        size,
        {0: (bytes(bitmap), bytes(child_data)), 1: (bytes(512), b"\xaa" * BS)},
        creator=b"tap\0",
        table_offset=1536,
        parent_uuid=parent_uuid,
        parent_name="parent.vhd",
    )
    (tmp_path / "child.vhd").write_bytes(child)
    expected = reference_read([tmp_path / "child.vhd", tmp_path / "parent.vhd"])
    got = chain_bytes(tmp_path / "child.vhd")
    assert got == expected
    assert got[512:1024] == parent_block[512:1024]  # bit 1 of 0x80 unset
    assert got[0:2] == b"\x00\x00"  # sector 0: bit set in 0x80


@needs_qemu
@pytest.mark.parametrize("size", [5 * BS, 5 * BS + 3 * 512, 8392192])
def test_written_dynamic_files_agree_with_qemu_and_libvhdi(tmp_path, size):
    rng = random.Random(size)
    count = -(-size // BS)
    blocks = {index: (None, random_block(rng)) for index in range(count) if rng.random() < 0.6}
    blocks[count - 1] = (None, random_block(rng))
    vhd.write_vhd(tmp_path / "ours.vhd", blocks, size=size)
    expected = chain_bytes(tmp_path / "ours.vhd")
    assert len(expected) == size
    assert qemu_img.read_vhd(tmp_path / "ours.vhd", tmp_path / "q.raw") == expected
    assert pyvhdi_read([tmp_path / "ours.vhd"]) == expected
    info = subprocess.run(
        ["vhdiinfo", str(tmp_path / "ours.vhd")], capture_output=True, text=True, check=True
    ).stdout
    assert f"({size} bytes)" in info


def test_written_chain_agrees_with_libvhdi_and_reference(tmp_path):
    rng = random.Random(5)
    size = 6 * BS
    paths, parent = [], None
    for level in range(4):
        blocks = {i: (None, random_block(rng)) for i in range(6) if rng.random() < 0.5}
        path = tmp_path / f"2026010{level}T000000Z.vhd"
        unique = uuid.uuid4()
        link = vhd.ParentLink(parent[0], parent[1].name) if parent else None
        vhd.write_vhd(path, blocks, size=size, uuid=unique, parent=link)
        paths.insert(0, path)
        parent = (unique, path)
    expected = reference_read(paths)
    assert chain_bytes(paths[0]) == expected
    assert pyvhdi_read(paths) == expected


def test_chain_moved_to_another_folder_still_opens(tmp_path):
    base_uuid = uuid.uuid4()
    vhd.write_vhd(tmp_path / "a.vhd", {0: (None, b"a" * BS)}, size=BS, uuid=base_uuid)
    vhd.write_vhd(tmp_path / "b.vhd", {}, size=BS, parent=vhd.ParentLink(base_uuid, "a.vhd"))
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path, moved, ignore=shutil.ignore_patterns("elsewhere"))
    os.unlink(tmp_path / "a.vhd")
    assert chain_bytes(moved / "b.vhd") == b"a" * BS


def test_random_reads_match_the_raw_stream(tmp_path):
    rng = random.Random(6)
    size = 3 * BS + 512
    blocks = {0: (None, random_block(rng)), 3: (None, random_block(rng))}
    vhd.write_vhd(tmp_path / "r.vhd", blocks, size=size)
    raw = chain_bytes(tmp_path / "r.vhd")
    with vhd.open_chain(tmp_path / "r.vhd") as chain:
        for _ in range(50):
            offset = rng.randrange(size)
            length = rng.randrange(3 * BS)
            assert chain.read(offset, length) == raw[offset : offset + length]
        assert chain.raw_stream().read() == raw


def test_unallocated_blocks_are_never_read(tmp_path, monkeypatch):
    vhd.write_vhd(tmp_path / "s.vhd", {7: (None, b"x" * BS)}, size=1024 * BS)
    reads = []
    real = os.pread
    monkeypatch.setattr(os, "pread", lambda fd, n, off: reads.append(n) or real(fd, n, off))
    with vhd.open_chain(tmp_path / "s.vhd") as chain:
        reads.clear()
        total = sum(len(chunk) for chunk in chain.iter_raw())
    assert total == 1024 * BS
    assert reads == [512 + BS]


def test_bitmaps_written_by_mask_round_trip(tmp_path):
    mask = int("1" * 10 + "0" * (SPB - 20) + "1" * 10, 2)
    vhd.write_vhd(tmp_path / "m.vhd", {0: (from_mask(mask, SPB), b"z" * BS)}, size=BS)
    data = chain_bytes(tmp_path / "m.vhd")
    assert data == b"z" * 5120 + bytes(BS - 10240) + b"z" * 5120
    assert data == reference_read([tmp_path / "m.vhd"])


def test_two_tib_disk_is_written_read_and_checked(tmp_path):
    size = vhd.MAX_DISK_SIZE
    last = size // BS - 1
    rng = random.Random(8)
    blocks = {0: (None, random_block(rng)), last: (None, random_block(rng))}
    vhd.write_vhd(tmp_path / "big.vhd", blocks, size=size)
    with vhd.open_chain(tmp_path / "big.vhd") as chain:
        assert chain.size == size and chain.block_count == 2**20
        assert chain.read(size - 4096, 8192) == blocks[last][1][-4096:]
        assert chain.read(BS * 1000, 16) == bytes(16)
    assert vhd.check_chain(tmp_path / "big.vhd") == []
    pyvhdi = pytest.importorskip("pyvhdi")
    handle = pyvhdi.file()
    handle.open(str(tmp_path / "big.vhd"))
    assert handle.media_size == size
    assert handle.read_buffer_at_offset(4096, size - 4096) == blocks[last][1][-4096:]
    with pytest.raises(vhd.VhdError, match="at most 2 TiB"):
        vhd.write_vhd(tmp_path / "huge.vhd", {}, size=size + 512)


@needs_qemu
def test_synthetic_full_of_a_partial_bitmap_chain_agrees_with_qemu_and_libvhdi(tmp_path):
    rng = random.Random(9)
    size = 3 * BS + 1024
    base = uuid.uuid4()
    vhd.write_vhd(
        tmp_path / "a.vhd",
        {0: (None, random_block(rng)), 3: (None, random_block(rng))},
        size=size,
        uuid=base,
    )
    mask = int("10" * (SPB // 2), 2)
    vhd.write_vhd(
        tmp_path / "b.vhd",
        {
            0: (from_mask(mask, SPB), random_block(rng)),
            1: (from_mask(mask, SPB), random_block(rng)),
        },
        size=size,
        parent=vhd.ParentLink(base, "a.vhd"),
    )
    expected = reference_read([tmp_path / "b.vhd", tmp_path / "a.vhd"])
    with vhd.open_chain(tmp_path / "b.vhd") as chain:
        synthetic = vhd.synthetic_vhd(chain)
        (tmp_path / "full.vhd").write_bytes(synthetic.stream().read())
        assert (tmp_path / "full.vhd").stat().st_size == synthetic.size
    assert qemu_img.read_vhd(tmp_path / "full.vhd", tmp_path / "full.raw") == expected
    assert pyvhdi_read([tmp_path / "full.vhd"]) == expected


def test_parent_found_by_uuid_when_an_absolute_path_names_another_file(tmp_path):
    """XAPI-style absolute parent names may exist on this host: the UUID decides."""
    other = tmp_path / "host" / "full.vhd"
    other.parent.mkdir()
    vhd.write_vhd(other, {0: (None, b"x" * BS)}, size=BS)
    base = uuid.uuid4()
    vhd.write_vhd(tmp_path / "full.vhd", {0: (None, b"y" * BS)}, size=BS, uuid=base)
    (tmp_path / "delta.vhd").write_bytes(
        build_vhd(BS, {}, parent_uuid=base, parent_name=str(other))
    )
    assert chain_bytes(tmp_path / "delta.vhd") == b"y" * BS
