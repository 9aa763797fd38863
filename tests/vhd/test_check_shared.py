"""``check_chain(…, checked=)``: chains that share ancestors are checked reading each file once
(the backup engine's verification relies on it), with the same findings as alone."""

from __future__ import annotations

import uuid

import backups.vhd as vhd
import backups.vhd.check as check_module
from backups.vhd.fields import vhd_time

BS = 2 * 2**20
NOW = 1_800_000_000.0
STAMP = vhd_time(NOW) - 3600


def chain_of_three(tmp_path):
    """full ← delta1 ← delta2, and delta1's header damaged (a finding shared by delta2)."""
    ids = [uuid.uuid4() for _ in range(3)]
    paths = [tmp_path / f"{n}.vhd" for n in ("full", "delta1", "delta2")]
    for index, path in enumerate(paths):
        parent = None
        if index:
            parent = vhd.ParentLink(ids[index - 1], paths[index - 1].name, STAMP)
        vhd.write_vhd(
            path,
            {index: (None, bytes([index + 1]) * BS)},
            size=4 * BS,
            uuid=ids[index],
            parent=parent,
            block_size=BS,
            timestamp=STAMP,
        )
    with open(paths[1], "r+b") as handle:  # the footer copy at 0 no longer matches the footer
        handle.write(b"XXXXXXXX")
    return paths


def test_shared_checks_read_each_file_once_and_find_the_same(tmp_path, monkeypatch):
    paths = chain_of_three(tmp_path)
    alone = {path: vhd.check_chain(path, now=NOW) for path in paths}
    assert alone[paths[0]] == [] and alone[paths[1]] and alone[paths[2]] == alone[paths[1]]

    inspected = []
    real = check_module.check_one

    def counting(path, *, now=None):
        inspected.append(path.name)
        return real(path, now=now)

    monkeypatch.setattr(check_module, "check_one", counting)
    checked: dict = {}
    shared = {path: vhd.check_chain(path, now=NOW, checked=checked) for path in reversed(paths)}
    assert shared == alone
    assert sorted(inspected) == ["delta1.vhd", "delta2.vhd", "full.vhd"], "each file once"
    assert checked[paths[2]].parent == paths[1] and checked[paths[0]].parent is None
