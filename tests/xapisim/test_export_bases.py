"""Delta exports against a base that is not an ancestor, over HTTP (docs/xapi.md §9.3).

A delta against a base holds the blocks of the layers on only one of the two chains (their
symmetric difference), so that writing it over the base gives the exported disk back, whichever
of the two is older. A delta computed as a plain difference (the exported chain minus the base's)
is right only when the base is an ancestor; these tests take the other cases.
"""

from __future__ import annotations

from tests.xapisim import vhd_check
from tests.xapisim.helpers import export, sha256_hex


def chain_read(sim, session, exported: str, base: str, tmp_path) -> tuple[bytes, list[int]]:
    """The content read back (by libvhdi) from the full VHD of ``base`` and the delta of
    ``exported`` against it, and the blocks the delta holds."""
    delta_bytes = export(sim.url, session.handle, exported, "vhd", base=base)[2]
    layout = vhd_check.read_layout(delta_bytes)
    full = tmp_path / "base.vhd"
    full.write_bytes(export(sim.url, session.handle, base, "vhd")[2])
    vhd_check.set_footer_uuid(full, layout.parent_uuid)
    delta = tmp_path / "delta.vhd"
    delta.write_bytes(delta_bytes)
    return vhd_check.pyvhdi_read(delta, parent=full), vhd_check.allocated_blocks(layout)


def test_an_older_snapshot_against_a_newer_one_gives_the_older_back(pool, tmp_path) -> None:
    sim, session, _vm, vdi = pool
    x = session.xenapi
    older = x.VDI.snapshot(vdi)
    written = sorted({int(b) for b in sim.sim("vdi_write_random", vdi, 4, "between")})
    newer = x.VDI.snapshot(vdi)

    content, blocks = chain_read(sim, session, older, newer, tmp_path)

    assert blocks == written  # the blocks that differ, read from the older one
    assert sha256_hex(content) == sim.sim("vdi_sha256", older)
    assert sha256_hex(content) != sim.sim("vdi_sha256", newer)


def test_a_snapshot_against_its_sibling_gives_it_back(pool, tmp_path) -> None:
    """Two snapshots on either side of a write, then the disk written again: the delta of the
    live disk against the first snapshot crosses layers on both sides of their common part."""
    sim, session, _vm, vdi = pool
    x = session.xenapi
    first = x.VDI.snapshot(vdi)
    sim.sim("vdi_write_random", vdi, 3, "one side")
    second = x.VDI.snapshot(vdi)
    sim.sim("vdi_write_random", vdi, 3, "other side")

    content, _ = chain_read(sim, session, second, first, tmp_path)
    assert sha256_hex(content) == sim.sim("vdi_sha256", second)
    content, _ = chain_read(sim, session, first, vdi, tmp_path)
    assert sha256_hex(content) == sim.sim("vdi_sha256", first)
