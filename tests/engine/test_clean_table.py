"""Every row of Xen Orchestra's cleanVm table, made by hand on a remote: the clean pass finds
it and repairs it as the table says (docs/maintenance.md §3); a dry run reports the same
findings and changes nothing; a second pass has nothing left to do; every backup left restores
exactly."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from backups import vhd
from backups.engine import RemoteAdapter, VmLock
from backups.engine.maintenance import maintain_vm
from backups.vhd.inplace import ParentWriter
from backups.vhd.vhdfile import footer_uuid

from .synthetic import BLOCK, JOB_ID, SyntheticVm, restores_exactly


@dataclass
class Site:
    remote: RemoteAdapter
    vm: SyntheticVm
    stamps: list[str]

    @property
    def folder(self) -> Path:
        return self.remote.root / "xo-vm-backups" / self.vm.uuid

    def disk(self, position: int) -> Path:
        return self.folder / "vdis" / JOB_ID / self.vm.disks[position].uuid

    def vhd(self, position: int, number: int) -> Path:
        return self.disk(position) / f"{self.stamps[number]}.vhd"

    def metadata(self, number: int) -> Path:
        return self.folder / f"{self.stamps[number]}.json"

    def drop(self, number: int) -> None:
        """What retention does: delete the backup's metadata only."""
        self.metadata(number).unlink()
        self.forget(number)

    def forget(self, number: int) -> None:
        """The backup is not expected to restore any more."""
        for disk in self.vm.disks:
            self.vm.expected.pop((self.stamps[number], disk.uuid), None)


@pytest.fixture
def site(tmp_path) -> Site:
    """A VM with two disks and four backups: b0 full, b1-b3 deltas."""
    remote = RemoteAdapter(tmp_path / "nas", remote_id="r", name="nas")
    vm = SyntheticVm.make(remote, disks=2, blocks=4)
    stamps = []
    for _ in range(4):
        vm.write(2)
        stamps.append(vm.backup())
    return Site(remote, vm, stamps)


def state(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(root.rglob("*"))
    }


# -- the rows ----------------------------------------------------------------------------------


def temporary(site: Site) -> None:
    (site.folder / f".{site.stamps[3]}.json.deadbeef.partial").write_bytes(b"{")
    (site.disk(0) / f".{site.stamps[3]}.vhd.0badcafe.partial").write_bytes(b"x" * 700)
    (site.folder / f".{site.stamps[3]}.json.1234.merge.json.tmp").write_bytes(b"")
    (site.folder.parent / f".{site.vm.uuid}.lock.abcd.broken").write_bytes(b"{}")


def temporary_after(site: Site) -> None:
    assert not list(site.remote.root.rglob(".*"))


def broken_vhd(site: Site) -> None:
    (site.disk(0) / "20300101T000000Z.vhd").write_bytes(os.urandom(3000))
    with site.vhd(1, 3).open("r+b") as handle:  # a backup's file: its backup goes too
        handle.seek(-512, 2)
        handle.write(b"garbage!")
    site.forget(3)


def broken_vhd_after(site: Site) -> None:
    assert not (site.disk(0) / "20300101T000000Z.vhd").exists()
    assert not site.metadata(3).exists()
    assert not site.vhd(1, 3).exists() and not site.vhd(0, 3).exists()


def missing_parent(site: Site) -> None:
    site.vhd(0, 1).unlink()  # b1 incomplete; b2 and b3 of disk 0 orphans
    for number in (1, 2, 3):
        site.drop(number)


def missing_parent_after(site: Site) -> None:
    assert [p.name for p in site.folder.glob("*.json")] == [f"{site.stamps[0]}.json"]
    assert sorted(p.name for p in site.disk(0).iterdir()) == [f"{site.stamps[0]}.vhd"]
    assert sorted(p.name for p in site.disk(1).iterdir()) == [f"{site.stamps[0]}.vhd"]


def duplicate_uuid(site: Site) -> None:
    shutil.copyfile(site.vhd(0, 3), site.disk(0) / "20300101T000000Z.vhd")


def duplicate_uuid_after(site: Site) -> None:
    assert not (site.disk(0) / "20300101T000000Z.vhd").exists()
    assert site.vhd(0, 3).exists()


def fork(site: Site) -> None:
    """b2 is dropped, and a second file (used by a backup of its own) names it as parent."""
    parent = footer_uuid(site.vhd(0, 2))
    other = site.disk(0) / "20300101T000000Z.vhd"
    vhd.write_vhd(
        other,
        {0: (None, os.urandom(BLOCK))},
        size=site.vm.disks[0].size,
        block_size=BLOCK,
        parent=vhd.ParentLink(parent, site.vhd(0, 2).name),
    )
    data = json.loads(site.metadata(3).read_text())
    ref = next(iter(data["vhds"]))
    data["vhds"][ref] = data["vhds"][ref].replace(site.stamps[3], "20300101T000000Z")
    (site.folder / "20300101T000000Z.json").write_text(json.dumps(data))
    site.drop(2)


def fork_after(site: Site) -> None:
    assert site.vhd(0, 2).exists()  # left alone: merging it would change the other branch


def aliases(site: Site) -> None:
    (site.disk(0) / "20300101T000000Z.alias.vhd").write_text("data/missing.vhd")
    (site.disk(0) / "data" / "orphan.vhd").mkdir(parents=True)
    (site.disk(0) / "data" / "orphan.vhd" / "bat").write_bytes(b"\0" * 16)


def aliases_after(site: Site) -> None:
    assert not (site.disk(0) / "20300101T000000Z.alias.vhd").exists()
    assert list((site.disk(0) / "data").iterdir()) == []


def incomplete_backup(site: Site) -> None:
    site.vhd(1, 3).unlink()
    site.forget(3)


def incomplete_backup_after(site: Site) -> None:
    assert not site.metadata(3).exists() and not site.vhd(0, 3).exists()


def unused_merge(site: Site) -> None:
    site.drop(1)


def unused_merge_after(site: Site) -> None:
    for position in (0, 1):
        assert not site.vhd(position, 1).exists()
        with vhd.open_vhd(site.vhd(position, 2)) as merged:
            assert merged.header.parent_uuid == footer_uuid(site.vhd(position, 0))
    data = json.loads(site.metadata(2).read_text())
    assert all(data["isVhdDifferencing"].values())
    assert all(disk["merged"] and disk["sha256"] == "" for disk in data["xoweb"]["disks"].values())
    assert data["size"] == sum(site.vhd(p, 2).stat().st_size for p in (0, 1))


def unused_vhd(site: Site) -> None:
    site.drop(3)


def unused_vhd_after(site: Site) -> None:
    assert not site.vhd(0, 3).exists() and not site.vhd(1, 3).exists()


def xva_rows(site: Site) -> None:
    """XO's full (XVA) backups: one with a wrong size that does not end like a tar, an XVA no
    metadata names, and a checksum without its XVA."""
    (site.folder / "20290101T000000Z.xva").write_bytes(os.urandom(3000))
    (site.folder / "20290101T000000Z.json").write_text(
        json.dumps(
            {
                "version": "2.0.0",
                "mode": "full",
                "jobId": "xo-job",
                "timestamp": 0,
                "size": 5,
                "vm": {},
                "xva": "./20290101T000000Z.xva",
            }
        )
    )
    (site.folder / "20290102T000000Z.xva").write_bytes(bytes(2048))
    (site.folder / "20290103T000000Z.xva.checksum").write_text("abc")


def xva_rows_after(site: Site) -> None:
    assert (site.folder / "20290101T000000Z.xva").exists()  # never deleted: a warning only
    assert not (site.folder / "20290102T000000Z.xva").exists()
    assert not (site.folder / "20290103T000000Z.xva.checksum").exists()


def stale_merge_state(site: Site) -> None:
    state = vhd.mergestate.MergeState(
        "gone.vhd", ["gone2.vhd"], str(uuid.uuid4()), [str(uuid.uuid4())]
    )
    (site.disk(0) / ".gone.vhd.merge.json").write_text(json.dumps(state.__dict__))


def stale_merge_state_after(site: Site) -> None:
    assert not (site.disk(0) / ".gone.vhd.merge.json").exists()


def interrupted_merge(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site.drop(1)

    def stop(self):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        patch.setattr(ParentWriter, "commit", stop)
        with pytest.raises(RuntimeError):
            vhd.merge(site.vhd(0, 2), batch_bytes=BLOCK)
    assert (site.disk(0) / f".{site.stamps[1]}.vhd.merge.json").exists()


def interrupted_merge_after(site: Site) -> None:
    unused_merge_after(site)


def merge_failed(site: Site) -> None:
    """A state file whose parent was replaced since (its UUID is not the one recorded)."""
    site.drop(1)
    state = vhd.mergestate.MergeState(
        site.vhd(0, 1).name,
        [site.vhd(0, 2).name],
        str(uuid.uuid4()),
        [str(footer_uuid(site.vhd(0, 2)))],
    )
    (site.disk(0) / f".{site.stamps[1]}.vhd.merge.json").write_text(json.dumps(state.__dict__))


def merge_failed_and_a_mixed_up_state(site: Site) -> None:
    """A state file that gives the merged file the parent's own UUID (as if the parent had
    already taken it): never renamed over the child that still has its own UUID."""
    site.drop(1)
    state = vhd.mergestate.MergeState(
        site.vhd(0, 1).name,
        [site.vhd(0, 2).name],
        str(uuid.uuid4()),
        [str(footer_uuid(site.vhd(0, 1)))],
    )
    (site.disk(0) / f".{site.stamps[1]}.vhd.merge.json").write_text(json.dumps(state.__dict__))


def merge_failed_after(site: Site) -> None:
    assert site.vhd(0, 1).exists()  # left as it is: the state names other files


def metadata_outdated(site: Site) -> None:
    """A merge done by hand, metadata not updated (what a kill between the two leaves)."""
    site.drop(1)
    vhd.merge(site.vhd(0, 2))


def metadata_outdated_after(site: Site) -> None:
    unused_merge_after(site)


def xo_cache(site: Site) -> None:
    (site.folder / "cache.json.gz").write_bytes(gzip.compress(json.dumps({"a": {}}).encode()))


def xo_cache_after(site: Site) -> None:
    assert not (site.folder / "cache.json.gz").exists()


def unreadable_metadata(site: Site) -> None:
    (site.folder / "20300101T000000Z.json").write_bytes(b"{not json")
    site.drop(3)


def unreadable_metadata_after(site: Site) -> None:
    assert site.vhd(0, 3).exists()  # what it names is unknown: nothing is deleted


@dataclass(frozen=True)
class Row:
    name: str
    make: Callable[..., None]
    expected: tuple[tuple[str, str], ...]  # (kind, action) found
    after: Callable[[Site], None]
    once_resumed: tuple[str, ...] = ()  # kinds only found after a merge was resumed


ROWS = [
    Row("temporary", temporary, (("temporary", "deleted"),), temporary_after),
    Row(
        "broken",
        broken_vhd,
        (
            ("broken_vhd", "deleted"),
            ("incomplete_backup", "deleted (it would not restore)"),
            ("unused_vhd", "deleted"),
        ),
        broken_vhd_after,
    ),
    Row(
        "missing parent",
        missing_parent,
        (("missing_parent", "deleted"), ("unused_vhd", "deleted")),
        missing_parent_after,
    ),
    Row("duplicate", duplicate_uuid, (("duplicate_uuid", "deleted (kept"),), duplicate_uuid_after),
    Row("fork", fork, (("fork", "left alone"),), fork_after),
    Row(
        "aliases",
        aliases,
        (("broken_alias", "deleted"), ("orphan_data", "deleted")),
        aliases_after,
    ),
    Row(
        "incomplete",
        incomplete_backup,
        (("incomplete_backup", "deleted (it would not restore)"), ("unused_vhd", "deleted")),
        incomplete_backup_after,
    ),
    Row("unused merged", unused_merge, (("unused_merge", "merged into"),), unused_merge_after),
    Row("unused deleted", unused_vhd, (("unused_vhd", "deleted"),), unused_vhd_after),
    Row(
        "xva",
        xva_rows,
        (
            ("unused_xva", "deleted"),
            ("orphan_checksum", "deleted"),
            ("xva_size", "warning only"),
            ("xva_invalid", "warning only"),
        ),
        xva_rows_after,
    ),
    Row(
        "stale merge state",
        stale_merge_state,
        (("stale_merge_state", "deleted"),),
        stale_merge_state_after,
    ),
    Row(
        "interrupted merge",
        interrupted_merge,
        (("interrupted_merge", "resumed"), ("metadata_outdated", "rewritten")),
        interrupted_merge_after,
        once_resumed=("metadata_outdated",),
    ),
    Row("merge failed", merge_failed, (("merge_failed", "left alone"),), merge_failed_after),
    Row(
        "merge state mixed up",
        merge_failed_and_a_mixed_up_state,
        (("merge_failed", "left alone"),),
        merge_failed_after,
    ),
    Row(
        "metadata outdated",
        metadata_outdated,
        (("metadata_outdated", "rewritten"), ("unused_merge", "merged into")),
        metadata_outdated_after,
    ),
    Row("xo cache", xo_cache, (("xo_cache", "deleted"),), xo_cache_after),
    Row(
        "unreadable metadata",
        unreadable_metadata,
        (("unreadable_metadata", "left alone"),),
        unreadable_metadata_after,
    ),
]


def found(report, kind: str, action: str) -> bool:
    return any(f.kind == kind and f.action.startswith(action) for f in report.findings)


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_each_row_is_found_and_repaired_as_the_table_says(site, row, monkeypatch):
    if row.make is interrupted_merge:
        row.make(site, monkeypatch)
    else:
        row.make(site)
    before = state(site.remote.root)

    dry = maintain_vm(site.remote, site.vm.uuid, dry_run=True)
    assert state(site.remote.root) == before, "a dry run changed the remote"
    for kind, action in row.expected:
        if kind in row.once_resumed:
            continue  # a dry run does not resume the merge, so it cannot see what follows
        assert any(f.kind == kind for f in dry.findings), (kind, dry.findings)
        if not action.startswith(("left", "warning")) and kind != "interrupted_merge":
            assert any(
                f.kind == kind and f.action.startswith("would be") and not f.done
                for f in dry.findings
            ), (kind, dry.findings)

    report = maintain_vm(site.remote, site.vm.uuid)
    for kind, action in row.expected:
        assert found(report, kind, action), (kind, action, report.findings)
    row.after(site)
    if row.make is not fork:
        restores_exactly(site.remote, site.vm.expected)
    again = maintain_vm(site.remote, site.vm.uuid)
    assert [f for f in again.findings if f.done] == [], again.findings
    assert state(site.remote.root) == state(site.remote.root)


def test_merges_beyond_the_budget_are_left_for_the_next_pass(site):
    site.drop(1)
    site.drop(2)  # one run of unused deltas per disk: two merges
    before = state(site.remote.root)
    held = maintain_vm(site.remote, site.vm.uuid, merges=0)
    assert state(site.remote.root) == before
    assert held.merges_left == 2
    assert [f.action for f in held.findings if f.kind == "merge_pending"] == [
        "left for the next pass (merge budget reached)"
    ] * 2
    one = maintain_vm(site.remote, site.vm.uuid, merges=1)
    assert (one.merges_done, one.merges_left) == (1, 1)
    rest = maintain_vm(site.remote, site.vm.uuid)
    assert (rest.merges_done, rest.merges_left) == (1, 0)
    restores_exactly(site.remote, site.vm.expected)


def test_a_read_error_changes_nothing(site, monkeypatch):
    site.drop(3)
    real = vhd.open_vhd
    victim = site.vhd(0, 2)

    def flaky(path, *args, **kwargs):
        if Path(path) == victim:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(vhd, "open_vhd", flaky)
    before = state(site.remote.root)
    report = maintain_vm(site.remote, site.vm.uuid)
    assert state(site.remote.root) == before
    [error] = [f for f in report.findings if f.kind == "read_error"]
    assert "Permission denied" in error.message and error.action == "nothing changed"


def test_a_folder_locked_by_a_live_process_is_skipped_even_by_a_dry_run(site):
    lock = site.remote.lock(site.vm.uuid, holder="run 7 of job nightly", heartbeat=0).acquire()
    try:
        for dry_run in (True, False):
            report = maintain_vm(site.remote, site.vm.uuid, dry_run=dry_run)
            [finding] = report.findings
            assert finding.kind == "locked" and finding.action == "skipped"
            assert "run 7 of job nightly" in report.skipped
    finally:
        lock.release()
    assert isinstance(lock, VmLock)
