"""Verification of a remote (backups.engine.verify): the metadata parses, every VHD exists and
passes its check with its chain, and a deep check finds a flipped byte by SHA-256. What it
finds feeds the planner (the next backup of a disk whose base failed is a full, with the
reason) and restores (a file known bad is never restored)."""

from __future__ import annotations

import json
import os

import pytest

from backups.engine import RestoreError, restore_disk_to_file, restore_vm
from backups.engine.planner import FullReason
from backups.engine.verify import verify_remote
from backups.engine.verify_report import Content

from .conftest import RecordingProgress

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def chain(pool, remotes):
    """A full and a delta of the simulator's VM on one remote: (vm uuid, [full, delta] outcomes)."""
    remote = remotes[:1]
    vm = pool.vm("vm-00000")
    full = pool.backup(vm["uuid"], remote)
    pool.write(vm["uuid"], 0, blocks=2, seed=7)
    delta = pool.backup(vm["uuid"], remote)
    assert {disk.mode for disk in delta.disks} == {"delta"}
    return vm["uuid"], [full, delta]


def flip_byte(path, offset_from_end: int = 512 + 4096) -> None:
    """Flip one byte in the data of the file's last block (before the 512-byte footer): the
    VHD's structure stays sound, only its content changes — what bit rot does."""
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) - offset_from_end)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x40]))


def vhd_of(outcome, remote, position: int = 0) -> str:
    return outcome.disks[position].files[remote.remote_id]


def test_a_sound_remote_passes_the_check_and_the_deep_check(pool, remotes, chain):
    remote = remotes[0]
    vm_uuid, outcomes = chain
    files = {path for outcome in outcomes for disk in outcome.disks for path in disk.files.values()}
    quick = verify_remote(remote, holder="test")
    assert quick.vms == [vm_uuid] and quick.skipped == {}
    assert [backup.timestamp for backup in quick.backups] == [o.timestamp for o in outcomes]
    assert quick.failed == [] and quick.bytes_read == 0
    assert set(quick.files) == files
    assert {file.content for file in quick.files.values()} == {Content.UNCHECKED}
    newest = quick.backups[-1]
    for disk in outcomes[1].disks:  # each delta's chain: itself, then the full it builds on
        full = next(d for d in outcomes[0].disks if d.vdi_uuid == disk.vdi_uuid)
        assert newest.chains[disk.vdi_uuid] == [disk.files["r1"], full.files["r1"]]

    progress = RecordingProgress()
    deep = verify_remote(remote, deep=True, holder="test", progress=progress)
    assert deep.failed == []
    assert {file.content for file in deep.files.values()} == {Content.OK}
    sizes = sum(remote.path(path).stat().st_size for path in files)
    assert deep.bytes_read == sizes
    assert progress.total == sizes and progress.done == sizes
    # The lock was taken and given back: a backup can start right after.
    assert not remote.path(f"xo-vm-backups/{vm_uuid}.lock").exists()


def test_a_flipped_byte_is_found_by_the_deep_check_only(pool, remotes, chain):
    remote = remotes[0]
    _vm_uuid, (full, delta) = chain
    rotten = vhd_of(full, remote)
    flip_byte(remote.path(rotten))

    assert verify_remote(remote, holder="test").failed == [], "its structure is sound"
    report = verify_remote(remote, deep=True, holder="test")
    assert report.files[rotten].content == Content.MISMATCH
    assert not report.files[rotten].ok
    # Both backups fail: the full holds the file, the delta builds on it.
    assert [backup.timestamp for backup in report.failed] == [full.timestamp, delta.timestamp]
    [problem] = report.problems(report.failed[0])
    assert problem.startswith(f"{rotten}: its SHA-256 is ")
    assert problem.endswith(
        f"that {full.timestamp}.json recorded when it was written: its bytes changed since "
        "(bit rot, or an edit)"
    )
    assert report.problems(report.failed[1]) == [problem]
    # The other disk's files are untouched.
    assert report.files[vhd_of(full, remote, 1)].content == Content.OK


def test_a_vhd_that_fails_its_check_is_found_without_deep(pool, remotes, chain):
    remote = remotes[0]
    _vm_uuid, (full, delta) = chain
    broken = vhd_of(delta, remote)
    with open(remote.path(broken), "r+b") as handle:
        handle.write(b"XXXXXXXX")  # the footer copy's cookie at offset 0

    report = verify_remote(remote, holder="test")
    assert [backup.timestamp for backup in report.failed] == [delta.timestamp]
    problems = report.problems(report.failed[0])
    assert problems and all(p.startswith(f"{broken}: ") for p in problems), problems
    assert any("footer" in problem for problem in problems), problems
    assert report.files[vhd_of(full, remote)].ok


def test_unreadable_metadata_and_missing_files_are_named(pool, remotes, chain):
    remote = remotes[0]
    _vm_uuid, (full, delta) = chain
    remote.path(vhd_of(full, remote, 1)).unlink()
    remote.path(delta.metadata["r1"]).write_text("{not json")

    report = verify_remote(remote, holder="test")
    by_time = {backup.timestamp: backup for backup in report.backups}
    [bad_json] = report.problems(by_time[delta.timestamp])
    assert bad_json.startswith(f"{delta.metadata['r1']}: ") and "not valid JSON" in bad_json
    missing = report.problems(by_time[full.timestamp])
    assert f"{vhd_of(full, remote, 1)}: missing (disk '{full.disks[1].vdi_name}'" in missing[0]


def test_a_vm_folder_locked_by_a_live_process_is_skipped_with_its_holder(pool, remotes, chain):
    remote = remotes[0]
    vm_uuid, _outcomes = chain
    with remote.lock(vm_uuid, holder="run 7 of job nightly, VM web", lease=30, heartbeat=5):
        report = verify_remote(remote, holder="test")
    assert report.vms == [] and report.backups == []
    assert "run 7 of job nightly, VM web" in report.skipped[vm_uuid]
    assert report.skipped[vm_uuid].startswith("not checked: ")


def test_a_failed_base_makes_the_next_backup_a_full_with_the_reason(pool, remotes, chain):
    remote = remotes[0]
    vm_uuid, (full, delta) = chain
    flip_byte(remote.path(vhd_of(full, remote)))
    report = verify_remote(remote, deep=True, holder="test")
    bad = {(remote.remote_id, path) for path, file in report.files.items() if not file.ok}

    pool.write(vm_uuid, 0, blocks=1, seed=9)
    outcome = pool.backup(vm_uuid, remotes[:1], known_bad=lambda rid, path: (rid, path) in bad)
    assert outcome.status == "success", outcome.error
    first, second = sorted(outcome.disks, key=lambda disk: disk.userdevice)
    assert first.mode == "full" and first.reason_code == FullReason.BASE_UNVERIFIED
    assert first.reason == (
        f"full: base backup {delta.timestamp}.vhd on remote 'nas1' failed its last "
        f"verification: its ancestor {full.timestamp}.vhd did"
    )
    # The other disk's chain is sound: it goes on as a delta.
    assert second.mode == "delta", second.reason


def test_a_restore_of_a_file_known_bad_is_refused(pool, remotes, chain, tmp_path):
    remote = remotes[0]
    _vm_uuid, (full, delta) = chain
    rotten = vhd_of(full, remote)

    def known_bad(remote_id: str, path: str) -> bool:
        return (remote_id, path) == (remote.remote_id, rotten)

    disk = delta.disks[0]
    with pytest.raises(RestoreError) as refused:
        restore_disk_to_file(
            remote, delta.metadata["r1"], disk.vdi_uuid, tmp_path / "x", known_bad=known_bad
        )
    assert str(refused.value) == (
        f"not restored: {rotten} on remote 'nas1' failed its last verification "
        "(`manage.py backup_check` says why); restore another backup, or check again once the "
        "remote is repaired"
    )
    assert not (tmp_path / "x").exists()
    vms_before = len(pool.client.get_all_records("VM"))
    with pytest.raises(RestoreError, match="failed its last verification"):
        restore_vm(
            pool.client, remote, delta.metadata["r1"], pool.default_sr(), known_bad=known_bad
        )
    assert len(pool.client.get_all_records("VM")) == vms_before, "nothing left on the pool"
    # The other disk's chain is not touched by the verdict.
    other = delta.disks[1]
    restored = restore_disk_to_file(
        remote, delta.metadata["r1"], other.vdi_uuid, tmp_path / "y", known_bad=known_bad
    )
    assert restored.sha256 == pool.expected[(delta.timestamp, other.vdi_uuid)]


def test_metadata_written_by_xo_has_no_checksum_to_compare(pool, remotes, chain):
    remote = remotes[0]
    _vm_uuid, (full, _delta) = chain
    path = remote.path(full.metadata["r1"])
    data = json.loads(path.read_text())
    del data["xoweb"]
    path.write_text(json.dumps(data))
    report = verify_remote(remote, deep=True, holder="test")
    assert report.failed == []
    assert report.files[vhd_of(full, remote)].content == Content.NO_CHECKSUM


def test_a_cancel_passes_through_and_leaves_no_lock(pool, remotes, chain):
    """The caller's cancel (raised by ``progress.check``) stops the check, the locks of the
    folders it held are released, and the exception is the caller's."""
    from .conftest import Cancelled

    remote = remotes[0]
    vm_uuid, _outcomes = chain

    class Cancelling(RecordingProgress):
        def check(self) -> None:
            if self.done:
                raise Cancelled("cancelled by the test")

    with pytest.raises(Cancelled):
        verify_remote(remote, deep=True, holder="test", progress=Cancelling())
    assert not remote.path(f"xo-vm-backups/{vm_uuid}.lock").exists()
    assert verify_remote(remote, holder="test").failed == [], "the next check runs"
