"""Property tests over random disk sizes and write histories (hypothesis)."""

from __future__ import annotations

import io
import tempfile
import uuid
from pathlib import Path

import pyvhdi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backups.vhd as vhd

from .histories import histories, read_all, unsound, write_history
from .vhdkit import TrickleReader, reference_read

PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(histories(), st.randoms(use_true_random=False))
def test_chain_reads_the_expected_bytes(history, rng):
    with tempfile.TemporaryDirectory() as folder:
        paths, expected = write_history(Path(folder), history)
        for level, path in enumerate(paths):
            assert read_all(path) == expected[level]
        assert reference_read(paths[::-1]) == expected[-1]
        with vhd.open_chain(paths[-1]) as chain:
            for _ in range(5):
                offset = rng.randrange(history.size)
                length = rng.randrange(2 * history.block_size)
                assert chain.read(offset, length) == expected[-1][offset : offset + length]
        assert unsound(paths[-1]) == []


@PROPERTY
@given(histories())
def test_synthetic_full_equals_the_chain(history):
    with tempfile.TemporaryDirectory() as folder:
        paths, expected = write_history(Path(folder), history)
        with vhd.open_chain(paths[-1]) as chain:
            synthetic = vhd.synthetic_vhd(chain)
            data = synthetic.stream().read()
            assert len(data) == synthetic.size
        stream = vhd.parse_stream(TrickleReader(data, step=4093))
        assert stream.footer.disk_type == vhd.DiskType.DYNAMIC
        target = Path(folder) / "synthetic.vhd"
        vhd.write_stream(stream, target, uuid=uuid.uuid4())
        assert read_all(target) == expected[-1]
        assert reference_read([target]) == expected[-1]


@PROPERTY
@given(histories())
def test_parse_write_parse_round_trip(history):
    with tempfile.TemporaryDirectory() as folder:
        paths, _expected = write_history(Path(folder), history)
        newest = paths[-1]
        first = vhd.parse_stream(io.BytesIO(newest.read_bytes()))
        blocks = [(b.index, b.bitmap, b.data) for b in first.blocks()]
        with vhd.open_vhd(newest) as file:
            identity = file.uuid
            link = (
                vhd.ParentLink(file.header.parent_uuid, file.header.parent_name)
                if file.disk_type == vhd.DiskType.DIFFERENCING
                else None
            )
        copy = Path(folder) / "copy.vhd"
        stream = vhd.parse_stream(io.BytesIO(newest.read_bytes()))
        vhd.write_stream(stream, copy, uuid=identity, parent=link)
        again = vhd.parse_stream(TrickleReader(copy.read_bytes()))
        assert [(b.index, b.bitmap, b.data) for b in again.blocks()] == blocks
        assert again.footer.uuid == identity and again.footer.current_size == history.size


@PROPERTY
@given(histories(max_layers=5), st.data())
def test_merge_keeps_every_level_that_remains(history, data):
    if len(history.layers) < 2:
        return
    with tempfile.TemporaryDirectory() as folder:
        paths, expected = write_history(Path(folder), history)
        first = data.draw(st.integers(min_value=1, max_value=len(paths) - 1), label="first")
        last = data.draw(st.integers(min_value=first, max_value=len(paths) - 1), label="last")
        with vhd.open_vhd(paths[last]) as newest:
            identity = newest.uuid
        result = vhd.merge(paths[first : last + 1], batch_bytes=3 * history.block_size)
        assert result.path == paths[last]
        assert not paths[first - 1].exists()
        assert all(not path.exists() for path in paths[first:last])
        with vhd.open_vhd(paths[last]) as merged:
            assert merged.uuid == identity
        for level in [*range(first - 1), *range(last, len(paths))]:
            assert read_all(paths[level]) == expected[level]
        assert (
            reference_read(
                [
                    paths[i]
                    for i in [*range(len(paths) - 1, last - 1, -1), *range(first - 2, -1, -1)]
                ]
            )
            == expected[-1]
        )
        assert unsound(paths[-1]) == []
        assert list(Path(folder).glob(".*")) == []


def _pyvhdi_chain(paths: list[Path]) -> bytes:
    """libvhdi's view of a chain given oldest first (exact for full bitmaps only)."""
    handles = []
    for path in paths:
        handle = pyvhdi.file()
        handle.open(str(path))
        if handles:
            handle.set_parent(handles[-1])
        handles.append(handle)
    return handles[-1].read_buffer_at_offset(handles[-1].media_size, 0)


@PROPERTY
@given(histories(max_layers=4), st.booleans())
def test_libvhdi_agrees_on_whole_block_chains_and_their_merges(history, merge_first):
    for layer in history.layers:
        layer.whole = True
    with tempfile.TemporaryDirectory() as folder:
        paths, expected = write_history(Path(folder), history)
        assert _pyvhdi_chain(paths) == expected[-1] == read_all(paths[-1])
        if merge_first and len(paths) > 1:
            vhd.merge(paths[1])
            remaining = [paths[1], *paths[2:]]
            assert _pyvhdi_chain(remaining) == expected[-1]
