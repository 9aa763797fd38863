"""The VHD stream writer and forward-only reader of xapisim, without HTTP (docs/vhd.md §2-§6)."""

from __future__ import annotations

import io
import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xapisim import vhdstream

BLOCK = vhdstream.BLOCK_SIZE


@pytest.mark.parametrize(
    ("size", "qemu_reads"),
    [(10 * 1024**3, 10737377280), (8392192, 8390656), (64 * 1024**2, 67055616)],
)
def test_geometry_matches_what_qemu_derives_for_caml(size: int, qemu_reads: int) -> None:
    """docs/vhd.md §6: qemu-img trusts CHS for `caml`, so CHS * 512 is what it reports (values
    observed with qemu-img 7.2 on streams of these sizes)."""
    cylinders, heads, sectors = vhdstream.geometry(size)
    assert cylinders * heads * sectors * 512 == qemu_reads


def test_footer_fields_and_checksum() -> None:
    footer = vhdstream.footer(64 * 1024**2, vhdstream.DYNAMIC, bytes(range(16)))
    assert len(footer) == 512 and footer[:8] == b"conectix"
    assert struct.unpack_from(">IIQI4sII", footer, 8) == (2, 0x00010000, 512, 0, b"caml", 1, 0)
    stored = struct.unpack_from(">I", footer, 64)[0]
    assert stored == (~sum(footer[:64] + bytes(4) + footer[68:])) & 0xFFFFFFFF
    assert footer[68:84] == bytes(range(16))


def _content(size: int, blocks: list[int], seed: int) -> bytes:
    rng = random.Random(seed)
    data = bytearray(size)
    for index in blocks:
        start = index * BLOCK
        length = min(BLOCK, size - start)
        data[start : start + length] = rng.randbytes(length)
    return bytes(data)


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=9).map(lambda n: n * BLOCK // 2 + 512 * (n % 3)),
    picks=st.lists(st.integers(min_value=0, max_value=8), unique=True),
    seed=st.integers(min_value=0, max_value=1000),
    delta=st.booleans(),
)
def test_export_then_apply_round_trips(size: int, picks: list[int], seed: int, delta: bool) -> None:
    blocks = sorted(b for b in picks if b * BLOCK < size)
    content = _content(size, blocks, seed)

    def read_block(index: int) -> bytes:
        piece = content[index * BLOCK : (index + 1) * BLOCK]
        return piece + bytes(BLOCK - len(piece))

    parent = vhdstream.Parent(bytes(16), 0.0, "/var/run/sr-mount/sr/p.vhd") if delta else None
    stream = b"".join(vhdstream.export_stream(size, blocks, read_block, parent))
    assert len(stream) == vhdstream.stream_size(size, len(blocks))
    target = bytearray(size)

    def write(offset: int, data: bytes) -> None:
        target[offset : offset + len(data)] = data

    reader = io.BytesIO(stream)
    written = vhdstream.apply_vhd(reader.read, len(stream), write)
    assert bytes(target) == content
    assert written == len(blocks) * (BLOCK // 512)


def test_apply_honours_partial_bitmaps() -> None:
    size = 2 * BLOCK
    stream = bytearray(b"".join(vhdstream.export_stream(size, [1], lambda i: b"\x07" * BLOCK)))
    bitmap_at = struct.unpack_from(">I", stream, 2048 + 4)[0] * 512
    stream[bitmap_at : bitmap_at + 512] = b"\x80" + bytes(511)  # only sector 0 of block 1
    target = bytearray(size)
    vhdstream.apply_vhd(
        io.BytesIO(bytes(stream)).read,
        len(stream),
        lambda o, d: target.__setitem__(slice(o, o + len(d)), d),
    )
    assert target[BLOCK : BLOCK + 512] == b"\x07" * 512
    assert target[BLOCK + 512 :] == bytes(BLOCK - 512)


def test_apply_rejects_garbage_and_truncation() -> None:
    with pytest.raises(vhdstream.VhdFormatError, match="conectix"):
        vhdstream.apply_vhd(io.BytesIO(bytes(4096)).read, 4096, lambda o, d: None)
    stream = b"".join(vhdstream.export_stream(BLOCK, [0], lambda i: bytes(BLOCK)))
    with pytest.raises(vhdstream.VhdFormatError, match="ended at byte"):
        vhdstream.apply_vhd(io.BytesIO(stream[:-1000]).read, len(stream), lambda o, d: None)
