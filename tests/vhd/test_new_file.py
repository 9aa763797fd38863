"""A new file written front to back may leave holes (``skip``): they read as zeros, take no
room, and the file's size covers them even when nothing is written after the last one."""

from __future__ import annotations

from backups.vhd.fileio import OsVhdIO

MIB = 1 << 20


def test_holes_read_as_zeros_take_no_room_and_count_in_the_size(tmp_path) -> None:
    path = tmp_path / "sparse"
    new = OsVhdIO().create(path)
    new.write(b"head")
    new.skip(4 * MIB)
    new.write(b"middle")
    new.skip(8 * MIB)  # a hole at the end: no write grows the file past it
    new.fsync()
    new.close()
    data = path.read_bytes()
    assert len(data) == 4 + 4 * MIB + 6 + 8 * MIB
    assert data[:4] == b"head" and data[4 + 4 * MIB : 4 + 4 * MIB + 6] == b"middle"
    assert data.count(0) == len(data) - 10
    assert path.stat().st_blocks * 512 <= 64 * 1024, "the holes took room on the disk"


def test_a_file_without_holes_is_written_as_before(tmp_path) -> None:
    path = tmp_path / "dense"
    new = OsVhdIO().create(path)
    new.write(b"a", memoryview(b"bc"))
    new.skip(0)
    new.fsync()
    new.close()
    assert path.read_bytes() == b"abc"
