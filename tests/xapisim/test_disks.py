"""The block store's copy-on-write chains and XAPI's delta rule, without HTTP
(docs/xapi.md §9.3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xapisim.disks import BLOCK_SIZE, BlockStore

BLOCKS = 4
SIZE = BLOCKS * BLOCK_SIZE - 4096  # a partial last block too


def content(store: BlockStore, vdi: str) -> bytes:
    return b"".join(store.iter_raw(vdi))


operation = st.one_of(
    st.tuples(st.just("write"), st.integers(0, SIZE - 1), st.binary(min_size=1, max_size=5000)),
    st.tuples(st.just("snapshot")),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=st.lists(operation, max_size=8))
def test_deltas_between_any_two_snapshots_rebuild_the_newer(tmp_path: Path, operations) -> None:
    """Whatever the history, applying delta(new, base) blocks over base's content gives new's
    content, snapshots keep their bytes, and a full export lists every allocated block."""
    store = BlockStore(tmp_path / f"s{abs(hash(str(operations)))}")
    store.create("disk", SIZE)
    snapshots: list[tuple[str, bytes]] = []
    for number, op in enumerate(operations):
        if op[0] == "write":
            _, offset, data = op
            store.write("disk", offset, data[: SIZE - offset])
        else:
            name = f"snap{number}"
            store.snapshot("disk", name)
            snapshots.append((name, content(store, "disk")))
    for name, expected in snapshots:
        assert content(store, name) == expected
    everything = [*(name for name, _ in snapshots), "disk"]
    for base in everything:
        for new in everything:
            rebuilt = bytearray(content(store, base))
            for index in store.delta_blocks(new, base):
                start = index * BLOCK_SIZE
                rebuilt[start : start + BLOCK_SIZE] = store.read_block(new, index)[
                    : len(rebuilt) - start
                ]
            assert bytes(rebuilt) == content(store, new)
        full = set(store.full_blocks(base))
        data = content(store, base)
        for index in range(BLOCKS):
            piece = data[index * BLOCK_SIZE : (index + 1) * BLOCK_SIZE]
            if piece.count(0) != len(piece):
                assert index in full


def test_delta_holds_only_the_blocks_written_between(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    store.create("disk", SIZE)
    store.write("disk", 0, b"a" * 10)
    store.snapshot("disk", "s1")
    store.write("disk", 3 * BLOCK_SIZE + 7, b"b")
    store.write("disk", 2 * BLOCK_SIZE, b"c" * 100)
    store.snapshot("disk", "s2")
    store.write("disk", BLOCK_SIZE, b"d")
    assert store.delta_blocks("s2", "s1") == [2, 3]
    assert store.delta_blocks("disk", "s2") == [1]
    assert store.delta_blocks("disk", "s1") == [1, 2, 3]
    assert store.full_blocks("s1") == [0]
    assert store.full_blocks("disk") == [0, 1, 2, 3]
    store.destroy("s1")
    assert store.delta_blocks("disk", "s2") == [1]
    assert hashlib.sha256(content(store, "s2")).hexdigest() == store.sha256("s2")


def test_destroy_keeps_base_copies_until_collect(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    store.create("disk", SIZE)
    store.write("disk", 0, b"x")
    base = store.snapshot("disk", "s1")
    assert base is not None and store.inner_nodes() == [base]
    store.write("disk", 0, b"y")
    files_before = set(tmp_path.glob("*.raw"))
    assert len(files_before) == 2
    store.destroy("disk")
    store.destroy("s1")
    assert list(store.nodes) == [base]  # the base copy waits for the GC
    assert [(step.node, step.into) for step in store.collect()] == [(base, None)]
    assert store.nodes == {} and store.used == {"": 0}
    assert list(tmp_path.glob("*.raw")) == []


def test_collect_merges_a_base_copy_into_its_only_child(tmp_path: Path) -> None:
    """Destroying the snapshot leaves the base copy with one child: the GC folds it into the
    disk's leaf, which keeps every byte and its identity."""
    store = BlockStore(tmp_path)
    store.create("disk", SIZE)
    store.write("disk", 0, b"a" * 10)
    store.write("disk", 2 * BLOCK_SIZE, b"b" * 10)
    base = store.snapshot("disk", "s1")
    store.write("disk", 2 * BLOCK_SIZE, b"c" * 5)
    before = content(store, "disk")
    leaf = store.leaf_of["disk"]
    store.destroy("s1")
    assert [(step.node, step.into) for step in store.collect()] == [(base, leaf)]
    assert list(store.nodes) == [leaf] and store.nodes[leaf].parent is None
    assert content(store, "disk") == before
    assert store.full_blocks("disk") == [0, 2]


def test_snapshot_of_an_unwritten_leaf_makes_no_base_copy(tmp_path: Path) -> None:
    """Like `vhd-util snapshot`, an empty leaf is skipped: both new leaves hang from its
    parent and no new inner node appears."""
    store = BlockStore(tmp_path)
    store.create("disk", SIZE)
    store.write("disk", 0, b"x")
    first = store.snapshot("disk", "s1")
    assert store.snapshot("disk", "s2") is None
    assert store.inner_nodes() == [first]
    assert store.nodes[store.leaf_of["s2"]].parent == first
