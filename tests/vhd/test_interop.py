"""Chains from every producer merge into files blktap accepts, and read as the chain did.

For each scenario of ``interop.py`` (XAPI, blktap with and without batmap, qemu, Windows; full
and partial bitmaps; even and odd sizes; a growing child) the merged file must: read exactly
what the chain read (our reader and the independent sector-by-sector one), pass ``check`` with
no finding at all, and pass blktap's ``vhd-util check`` as ``blktapkit`` restates it. And on
every input as on every result, ``check`` finds something exactly when blktap would refuse.
"""

from __future__ import annotations

import pytest

import backups.vhd as vhd

from .blktapkit import blktap_verdict
from .histories import read_all
from .interop import build, scenarios
from .vhdkit import reference_read

SCENARIOS = scenarios()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_merged_chain_is_blktap_valid_and_reads_the_same(tmp_path, scenario):
    parent, child = build(tmp_path, scenario)
    expected = reference_read([child, parent])
    assert read_all(child) == expected
    with vhd.open_vhd(child) as file:
        identity = file.uuid
    vhd.merge(child)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["child.vhd"]
    assert read_all(child) == expected
    assert reference_read([child]) == expected
    assert [str(finding) for finding in vhd.check_chain(child)] == []
    assert blktap_verdict(child) is None
    with vhd.open_vhd(child) as merged:
        assert merged.uuid == identity and merged.size == scenario.size
        assert merged.footer.creator_app == b"tap\0" and merged.footer.creator_version == 0x10003
        assert merged.batmap is not None
        # Blocks the merge made whole are marked; the batmap never claims a partial one.
        for index in merged.allocated_blocks():
            bitmap, _data = merged.read_block(index)
            if merged.batmap.is_full(index):
                assert bytes(bitmap) == b"\xff" * 512


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_check_flags_exactly_what_blktap_refuses(tmp_path, scenario):
    parent, child = build(tmp_path, scenario)
    for path in (parent, child):
        own = [str(f) for f in vhd.check_chain(path) if f.path == path]
        verdict = blktap_verdict(path)
        assert bool(own) == (verdict is not None), (path.name, own, verdict)
    assert vhd.errors(vhd.check_chain(child)) == [] or scenario.producer == "tap-no-batmap"
