"""The forward-only stream parser and storing a stream with a new identity."""

from __future__ import annotations

import hashlib
import io
import random
import uuid

import pytest

import backups.vhd as vhd

from .vhdkit import TrickleReader, build_vhd, reference_read

BS = 2 * 2**20
FULL = b"\xff" * 512


def xapi_export(size: int, blocks: dict[int, bytes], **kwargs) -> bytes:
    return build_vhd(size, {index: (FULL, data) for index, data in blocks.items()}, **kwargs)


def sample(seed: int = 0, size: int = 5 * BS + 1024) -> tuple[int, dict[int, bytes]]:
    rng = random.Random(seed)
    return size, {index: rng.randbytes(512) * (BS // 512) for index in (0, 2, 5)}


def test_parses_a_xapi_stream_from_a_socket_like_body():
    size, blocks = sample()
    stream = vhd.parse_stream(TrickleReader(xapi_export(size, blocks)), "export of vdi X")
    assert stream.footer.current_size == size and stream.header.table_offset == 2048
    assert stream.block_indices == [0, 2, 5]
    got = {block.index: block.data for block in stream.blocks()}
    assert got == blocks


def test_store_stream_with_new_identity_then_chain_reads_it(tmp_path):
    size, blocks = sample(1)
    base_uuid, snap_uuid = uuid.uuid4(), uuid.uuid4()
    full = vhd.parse_stream(io.BytesIO(xapi_export(size, blocks)))
    written = vhd.write_stream(full, tmp_path / "20260101T000000Z.vhd", uuid=base_uuid)
    assert written.blocks == 3
    delta_blocks = {2: b"d" * BS, 3: b"e" * BS}
    delta = vhd.parse_stream(
        TrickleReader(
            xapi_export(
                size,
                delta_blocks,
                parent_uuid=uuid.uuid4(),
                parent_name="/var/run/sr-mount/x/y.vhd",
                macx_locator=True,
            )
        )
    )
    hasher = hashlib.sha256()
    path = tmp_path / "20260102T000000Z.vhd"
    result = vhd.write_stream(
        delta,
        path,
        uuid=snap_uuid,
        parent=vhd.ParentLink(base_uuid, "20260101T000000Z.vhd", timestamp=77),
        hasher=hasher,
    )
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.size == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "20260101T000000Z.vhd",
        "20260102T000000Z.vhd",
    ]
    with vhd.open_vhd(path) as file:
        assert file.uuid == snap_uuid
        assert file.header.parent_uuid == base_uuid
        assert file.header.parent_name == "20260102T000000Z.vhd".replace("2T", "1T")
        assert file.header.parent_timestamp == 77
        assert [name for _loc, name in file.locator_paths] == ["20260101T000000Z.vhd"] * 2
        assert file.footer.creator_app == b"tap\0"
    expected = bytearray(size)
    for index, data in {**blocks, **delta_blocks}.items():
        expected[index * BS : (index + 1) * BS] = data[: size - index * BS]
    with vhd.open_chain(path) as chain:
        assert b"".join(bytes(c) for c in chain.iter_raw()) == expected
    assert reference_read([path, tmp_path / "20260101T000000Z.vhd"]) == expected
    pyvhdi = pytest.importorskip("pyvhdi")
    full_handle, delta_handle = pyvhdi.file(), pyvhdi.file()
    full_handle.open(str(tmp_path / "20260101T000000Z.vhd"))
    delta_handle.open(str(path))
    delta_handle.set_parent(full_handle)  # checks our rewritten parent UUID
    assert delta_handle.read_buffer_at_offset(size, 0) == expected


def test_parse_write_parse_round_trip_keeps_every_byte(tmp_path):
    size, blocks = sample(2)
    vhd.write_stream(
        vhd.parse_stream(io.BytesIO(xapi_export(size, blocks))),
        tmp_path / "a.vhd",
        uuid=uuid.uuid4(),
    )
    again = vhd.parse_stream(TrickleReader((tmp_path / "a.vhd").read_bytes()))
    assert {block.index: block.data for block in again.blocks()} == blocks


@pytest.mark.parametrize(
    ("cut", "message"),
    [
        (300, "stream ended at offset 300 inside the footer copy"),
        (1000, "inside the dynamic header"),
        (2100, "inside the BAT"),
        (2048 + 512 + 512 + BS + 512 + 100, "inside block 2 (expected 2097664 bytes"),
        (-1, "stream ended at offset"),
    ],
)
@pytest.mark.parametrize("body_type", [TrickleReader, io.BytesIO])
def test_truncated_stream_says_where_and_what(cut, message, body_type):
    size, blocks = sample(3)
    data = xapi_export(size, blocks)
    body = body_type(data[:cut])
    with pytest.raises(vhd.TruncatedError, match=message.replace("(", r"\(")):
        stream = vhd.parse_stream(body, "export")
        for _block in stream.blocks():
            pass


def test_footer_that_differs_from_the_copy_is_refused():
    size, blocks = sample(4)
    data = bytearray(xapi_export(size, blocks))
    other = vhd.Footer.parse(bytes(data[-512:]), "x").replace(current_size=size + 512)
    data[-512:] = other.pack()
    stream = vhd.parse_stream(io.BytesIO(bytes(data)), "export")
    with pytest.raises(
        vhd.VhdFormatError, match="differs from the footer copy at offset 0 in current_size"
    ):
        list(stream.blocks())


def test_flipped_bitmap_byte_in_a_xapi_stream_is_refused():
    size, blocks = sample(5)
    data = bytearray(xapi_export(size, blocks))
    data[2048 + 512 + 512 + BS + 17] = 0xFE  # bitmap of the second block (index 2)
    stream = vhd.parse_stream(io.BytesIO(bytes(data)), "export")
    with pytest.raises(
        vhd.VhdFormatError,
        match=r"block 2: bitmap at offset \d+ has byte 17 = "
        "0xfe, expected 0xff",
    ):
        list(stream.blocks())


def test_http_error_inside_the_body_is_named():
    body = io.BytesIO(b"HTTP/1.1 500 Internal Error\r\n\r\n" + bytes(600))
    with pytest.raises(
        vhd.VhdFormatError, match=r"HTTP response \('HTTP/1\.1 500 Internal Error'\)"
    ):
        vhd.parse_stream(body, "export")


def test_bat_pointing_backwards_is_refused():
    size, blocks = sample(6)
    data = bytearray(xapi_export(size, blocks))
    data[2048 + 8 : 2048 + 12] = (3).to_bytes(4, "big")  # block 2 → sector 3
    with pytest.raises(vhd.VhdFormatError, match="block 2: BAT entry points to offset 1536"):
        vhd.parse_stream(io.BytesIO(bytes(data)), "export")


def test_garbage_after_the_footer_is_refused():
    size, blocks = sample(7)
    data = xapi_export(size, blocks) + bytes(5 * 2**20)
    stream = vhd.parse_stream(io.BytesIO(data), "export")
    with pytest.raises(vhd.VhdFormatError, match="follow the last block"):
        list(stream.blocks())


def test_writer_commits_nothing_when_the_stream_breaks(tmp_path):
    size, blocks = sample(8)
    data = xapi_export(size, blocks)
    stream = vhd.parse_stream(io.BytesIO(data[: len(data) - 700]))
    with pytest.raises(vhd.TruncatedError):
        vhd.write_stream(stream, tmp_path / "x.vhd", uuid=uuid.uuid4())
    assert list(tmp_path.iterdir()) == []


def test_memory_stays_bounded_by_blocks():
    """The parser never asks for more than one block span at once."""
    size, _blocks = sample(9, size=40 * BS)
    data = xapi_export(size, {i: b"q" * BS for i in range(0, 40, 3)})

    class Recording(io.BytesIO):
        largest = 0

        def read(self, n=-1):
            Recording.largest = max(Recording.largest, n)
            return super().read(n)

        def readinto(self, buffer):
            Recording.largest = max(Recording.largest, len(buffer))
            return super().readinto(buffer)

    stream = vhd.parse_stream(Recording(data))
    assert sum(1 for _ in stream.blocks()) == 14
    assert 0 < Recording.largest <= BS + 512


def test_garbage_table_size_is_refused_before_reading_the_bat():
    size, blocks = sample(10)
    data = bytearray(xapi_export(size, blocks))
    header = vhd.Header.parse(bytes(data[512:1536]), "h").replace(max_table_entries=0x7FFFFFFF)
    data[512:1536] = header.pack()
    with pytest.raises(
        vhd.VhdFormatError,
        match="max table entries 2147483647 with blocks of "
        "2097152 bytes address more than the format's 2 TiB limit",
    ):
        vhd.parse_stream(io.BytesIO(bytes(data)), "export")


def test_blocks_in_file_order_not_index_order(tmp_path):
    """qemu appends blocks in write order: the parser follows offsets, not indices."""
    size = 4 * BS
    writer = vhd.VhdWriter(tmp_path / "q.vhd", size=size, blocks=[3, 0, 2], uuid=uuid.uuid4())
    with writer:
        for index in (3, 0, 2):
            writer.write_block(index, None, bytes([65 + index]) * BS)
        writer.close()
    stream = vhd.parse_stream(io.BytesIO((tmp_path / "q.vhd").read_bytes()))
    assert stream.block_order == [3, 0, 2] and stream.block_indices == [0, 2, 3]
    vhd.write_stream(stream, tmp_path / "copy.vhd", uuid=uuid.uuid4())
    expected = b"A" * BS + bytes(BS) + b"C" * BS + b"D" * BS
    assert reference_read([tmp_path / "copy.vhd"]) == expected
    assert reference_read([tmp_path / "q.vhd"]) == expected
