"""Damaged files and chains give a precise error naming file, structure and field.

Never a wrong read: every case either reads the original bytes or raises.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

import backups.vhd as vhd

BS = 2 * 2**20
SIZE = 4 * BS


def make(tmp_path: Path, name: str = "a.vhd", **kwargs) -> Path:
    path = tmp_path / name
    blocks = kwargs.pop("blocks", {0: (None, b"a" * BS), 2: (None, b"c" * BS)})
    vhd.write_vhd(path, blocks, size=SIZE, **kwargs)
    return path


def flip(path: Path, offset: int, value: int | None = None) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        old = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([old ^ 0xFF if value is None else value]))


def open_error(path: Path) -> str:
    with pytest.raises(vhd.VhdFormatError) as caught:
        vhd.open_chain(path)
    return str(caught.value)


def test_flipped_byte_in_the_footer(tmp_path):
    path = make(tmp_path)
    size = path.stat().st_size
    flip(path, size - 512 + 50)
    message = open_error(path)
    assert re.search(
        rf"a.vhd: footer at offset {size - 512}: footer checksum is 0x\w+, computed 0x\w+ "
        r"\(footer corrupted\); the footer copy at offset 0 is valid",
        message,
    )


def test_flipped_byte_in_the_footer_copy_is_found_by_check(tmp_path):
    path = make(tmp_path)
    flip(path, 60 + 3)  # disk type of the copy
    findings = [str(finding) for finding in vhd.check_file(path)]
    assert len(findings) == 1
    assert re.fullmatch(
        rf"{path}: footer copy at offset 0: footer checksum is 0x\w+, computed 0x\w+ "
        r"\(footer corrupted\)",
        findings[0],
    )
    with vhd.open_chain(path) as chain:  # the copy is never used to read
        assert chain.read(0, 4) == b"aaaa"


def test_flipped_byte_in_the_header(tmp_path):
    path = make(tmp_path)
    flip(path, 512 + 33)  # block size
    assert re.search(
        r"a.vhd: header at offset 512: header checksum is 0x\w+, computed", open_error(path)
    )


def test_flipped_byte_in_the_bat(tmp_path):
    path = make(tmp_path)
    flip(path, 1536 + 8 + 2)  # entry of block 2, a byte that moves it by 64 KiB multiples
    message = open_error(path)
    assert "BAT corrupted" in message and "block 2" in message


def test_bat_entry_past_the_end(tmp_path):
    path = make(tmp_path)
    flip(path, 1536 + 8, 0x40)
    assert re.search(
        r"block 2: BAT entry points to offset \d+, and its 2097664 bytes \(bitmap \+ data\) "
        r"extend past the end of the data at \d+ \(file truncated or BAT corrupted\)",
        open_error(path),
    )


def test_flipped_byte_in_a_bitmap_of_a_whole_block_file(tmp_path):
    path = make(tmp_path)
    with vhd.open_vhd(path) as file:
        bitmap_at = file.block_offset(2)
    flip(path, bitmap_at + 100)
    with vhd.open_chain(path) as chain, pytest.raises(vhd.VhdFormatError) as caught:
        chain.read(2 * BS, 10)
    assert str(caught.value) == (
        f"{path}: block 2: bitmap at offset {bitmap_at} has byte 100 = 0x00, expected 0xff "
        "because the batmap marks the block fully allocated (bitmap corrupted)"
    )
    assert [f.message for f in vhd.check_file(path)] == [str(caught.value).split(": ", 1)[1]]


def test_flipped_byte_in_the_batmap(tmp_path):
    path = make(tmp_path)
    with vhd.open_vhd(path) as file:
        where = file.batmap.offset
    flip(path, where)
    assert re.search(
        r"batmap header at offset \d+: batmap checksum is 0x\w+, computed", open_error(path)
    )


@pytest.mark.parametrize("cut", [1, 512, 700, BS, BS + 2048])
def test_truncated_file(tmp_path, cut):
    path = make(tmp_path)
    os.truncate(path, path.stat().st_size - cut)
    with pytest.raises(vhd.TruncatedError, match=r"a.vhd: .*(truncated)"):
        vhd.open_chain(path)
    assert vhd.check_file(path)


def test_parent_with_wrong_uuid(tmp_path):
    make(tmp_path, "p.vhd", uuid=uuid.uuid4())
    expected = uuid.uuid4()
    child = make(tmp_path, "c.vhd", blocks={}, parent=vhd.ParentLink(expected, "p.vhd"))
    with vhd.open_vhd(tmp_path / "p.vhd") as parent:
        actual = parent.uuid
    with pytest.raises(vhd.ChainError) as caught:
        vhd.open_chain(child)
    assert str(caught.value) == (
        f"{child}: header names parent UUID {expected}, but {tmp_path / 'p.vhd'} has footer "
        f"UUID {actual} (wrong parent file)"
    )
    assert [str(f) for f in vhd.check_chain(child)] == [
        str(caught.value).replace("(wrong parent file)", "(wrong parent)")
    ]


def test_missing_parent_lists_where_it_looked(tmp_path):
    child = make(tmp_path, "c.vhd", blocks={}, parent=vhd.ParentLink(uuid.uuid4(), "gone.vhd"))
    with pytest.raises(vhd.ChainError, match=rf"not found \(tried {tmp_path}/gone.vhd\)"):
        vhd.open_chain(child)


def test_loop_in_parents(tmp_path):
    a, b = uuid.uuid4(), uuid.uuid4()
    make(tmp_path, "a.vhd", blocks={}, uuid=a, parent=vhd.ParentLink(b, "b.vhd"))
    make(tmp_path, "b.vhd", blocks={}, uuid=b, parent=vhd.ParentLink(a, "a.vhd"))
    with pytest.raises(vhd.ChainError, match=r"loop in parents: .*a.vhd -> .*b.vhd -> .*a.vhd"):
        vhd.open_chain(tmp_path / "a.vhd")
    assert any("loop in parents" in str(f) for f in vhd.check_chain(tmp_path / "a.vhd"))


def test_check_reports_every_problem_at_once(tmp_path):
    path = make(tmp_path)
    with vhd.open_vhd(path) as file:
        first, second = file.block_offset(0), file.block_offset(2)
    flip(path, first + 1)
    flip(path, second + 2)
    flip(path, 10)  # footer copy
    messages = [f.message for f in vhd.check_file(path)]
    assert len(messages) == 3
    assert messages[0].startswith("footer copy at offset 0")
    assert "block 0: bitmap" in messages[1] and "block 2: bitmap" in messages[2]


def test_not_a_vhd(tmp_path):
    path = tmp_path / "x.vhd"
    path.write_bytes(bytes(4096))
    assert "footer cookie is '\\x00\\x00" in open_error(path)


def rewrite_header(path: Path, **changes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(512)
        header = vhd.Header.parse(handle.read(1024), "h").replace(**changes)
        handle.seek(512)
        handle.write(header.pack())


def test_table_too_small_for_the_disk_size(tmp_path):
    path = make(tmp_path)
    rewrite_header(path, max_table_entries=2)
    assert open_error(path) == (
        f"{path}: header max table entries is 2, but a disk of {SIZE} bytes in blocks of "
        f"{BS} bytes needs 4"
    )


def test_block_pointing_into_the_metadata(tmp_path):
    path = make(tmp_path)
    with open(path, "r+b") as handle:
        handle.seek(1536 + 8)
        handle.write((1).to_bytes(4, "big"))  # block 2 → sector 1, the dynamic header
    assert open_error(path) == (
        f"{path}: block 2 at offset 512 overlaps dynamic header (512..1536) (BAT or header "
        "corrupted) (and 3 more problems)"
    )
    assert len(vhd.check_file(path)) == 4
