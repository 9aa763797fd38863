"""Never a wrong read: any byte flipped outside block data gives an error or the same bytes.

Block data has no checksum in the VHD format, so only bytes a reader interprets are flipped:
footers, header, BAT, batmap, locators and bitmaps of whole-block files, and in streams
everything but the data.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backups.vhd as vhd

from .histories import History, Layer, read_all, write_history
from .vhdkit import build_vhd

BS = 4096
SPB = BS // 512
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def interpreted_offsets(path: Path) -> list[int]:
    """Every byte offset of ``path`` that is not block data."""
    with vhd.open_vhd(path) as file:
        data = set()
        for index in file.allocated_blocks():
            start = file.block_offset(index) + file.bitmap_size
            data.update(range(start, start + file.block_size))
        return [offset for offset in range(file.file_size) if offset not in data]


def chain_history() -> History:
    return History(
        size=6 * BS - 1024,
        block_size=BS,
        layers=[Layer([(0, 3 * SPB), (5 * SPB, 4)], whole=True), Layer([(SPB + 3, 9)], whole=True)],
    )


@SETTINGS
@given(st.data())
def test_flipped_byte_in_a_file_never_reads_wrong(data):
    with tempfile.TemporaryDirectory() as folder:
        paths, expected = write_history(Path(folder), chain_history())
        target = data.draw(st.sampled_from(paths), label="file")
        offset = data.draw(st.sampled_from(interpreted_offsets(target)), label="offset")
        mask = data.draw(st.integers(min_value=1, max_value=255), label="xor")
        raw = bytearray(target.read_bytes())
        raw[offset] ^= mask
        target.write_bytes(raw)
        try:
            assert read_all(paths[-1]) == expected[-1]
        except vhd.VhdError:
            pass


def xapi_stream() -> tuple[bytes, dict[int, bytes]]:
    blocks = {0: b"a" * BS, 2: b"c" * BS, 3: b"d" * BS}
    full = b"\xff" * 512
    data = build_vhd(
        4 * BS - 512,
        {i: (full, d) for i, d in blocks.items()},
        block_size=BS,
        parent_uuid=uuid.UUID(int=7),
        parent_name="/var/x.vhd",
        macx_locator=True,
    )
    return data, blocks


@SETTINGS
@given(st.data())
def test_flipped_byte_in_a_stream_never_reads_wrong(data):
    stream_bytes, blocks = xapi_stream()
    span = 512 + BS
    first_block = len(stream_bytes) - 512 - len(blocks) * span
    data_ranges = [
        range(first_block + n * span + 512, first_block + (n + 1) * span) for n in range(3)
    ]
    offset = data.draw(
        st.integers(min_value=0, max_value=len(stream_bytes) - 1).filter(
            lambda o: not any(o in r for r in data_ranges)
        ),
        label="offset",
    )
    raw = bytearray(stream_bytes)
    raw[offset] ^= data.draw(st.integers(min_value=1, max_value=255), label="xor")
    try:
        stream = vhd.parse_stream(io.BytesIO(bytes(raw)))
        got = {block.index: bytes(block.data) for block in stream.blocks()}
    except vhd.VhdError:
        return
    assert got == blocks
