"""The remote adapter: the write test, atomic files and where each fsync is, metadata as the
commit point, listings that skip what is not a backup."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from backups.engine import MetadataError, RemoteAdapter, RemoteError
from backups.vhd import VhdFormatError

from .conftest import immutable
from .recording_fs import RecordingFileSystem
from .test_layout_metadata import JOB, VM, metadata


@pytest.fixture
def remote(tmp_path):
    return RemoteAdapter(tmp_path / "nas", remote_id="r1", name="nas", fs=RecordingFileSystem())


def test_check_creates_the_folder_and_proves_a_write(remote):
    space = remote.check()
    assert remote.root.is_dir() and list(remote.root.iterdir()) == []
    assert space.total > 0 and 0 <= space.free <= space.total
    ops = remote.fs.ops("create", "write", "fsync", "unlink")
    assert ops == ["create", "write", "fsync", "unlink"]


def test_check_names_the_remote_and_the_reason(remote):
    remote.root.mkdir()
    with immutable(remote.root), pytest.raises(RemoteError) as caught:
        remote.check()
    assert str(caught.value).startswith(
        f"remote 'nas' ({remote.root}): cannot write a test file (is it writable?)"
    )
    assert str(caught.value).endswith("Operation not permitted")
    assert caught.value.remote_id == "r1"


def test_an_atomic_file_is_flushed_validated_renamed_then_its_folder_flushed(remote):
    seen = []
    with remote.atomic_file(
        "a/b/file.bin", validate=lambda temp: seen.append(temp.read_bytes())
    ) as f:
        f.write(b"hello ", memoryview(b"world"))
        temp = f.temp_path
        assert temp.name.startswith(".file.bin.") and temp.name.endswith(".partial")
        assert not remote.path("a/b/file.bin").exists()
    assert remote.path("a/b/file.bin").read_bytes() == b"hello world" == seen[0]
    ops = remote.fs.ops()
    # New folders: each one's parent is flushed so that the file's folder survives a crash.
    assert ops[:6] == ["mkdir", "fsync_dir"] * 3  # nas, a, b
    tail = [op for op in ops[6:] if op != "write"]
    assert tail == ["create", "fsync", "close", "rename", "fsync_dir"]
    assert remote.fs.log[-1] == ("fsync_dir", str(remote.path("a/b")))


def test_a_failed_validation_or_an_error_leaves_no_file(remote):
    def refuse(temp):
        raise VhdFormatError(f"{temp}: not a VHD")

    with (
        pytest.raises(VhdFormatError, match="not a VHD"),
        remote.atomic_file("x.vhd", validate=refuse) as f,
    ):
        f.write(b"junk")
    with pytest.raises(RuntimeError), remote.atomic_file("y.vhd") as f:
        f.write(b"junk")
        raise RuntimeError("the export broke")
    assert list(remote.root.iterdir()) == []


def test_metadata_is_validated_before_it_commits(remote):
    bad = metadata()
    del bad["vhds"]
    with pytest.raises(MetadataError, match="field 'vhds' is missing"):
        remote.write_metadata(VM, "20261129T010203Z.json", bad)
    assert remote.list_backups() == []
    assert not any(remote.root.rglob("*.json"))


def test_writing_or_deleting_a_backup_drops_xo_s_listing_cache(remote):
    folder = remote.path(f"xo-vm-backups/{VM}")
    folder.mkdir(parents=True)
    cache = folder / "cache.json.gz"
    cache.write_bytes(gzip.compress(b"{}"))
    path = remote.write_metadata(VM, "20261129T010203Z.json", metadata())
    assert not cache.exists()
    assert json.loads(remote.path(path).read_text())["jobId"] == JOB
    cache.write_bytes(gzip.compress(b"{}"))
    remote.delete_backup(path)
    assert not cache.exists() and not remote.path(path).exists()
    remote.delete_backup(path)  # twice is fine


def test_listings_hold_only_committed_backups_oldest_first(remote, caplog):
    remote.write_metadata(VM, "20261129T020000Z.json", metadata())
    remote.write_metadata(VM, "20261129T010000Z.json", metadata())
    folder = remote.path(f"xo-vm-backups/{VM}")
    (folder / "20261129T030000Z.json").write_text("{not json")
    (folder / ".20261129T040000Z.json.abcd.partial").write_text("{}")
    (folder / "cache.json.gz").write_bytes(b"")
    remote.path(f"xo-vm-backups/{VM}.lock").mkdir()
    remote.path("xo-vm-backups/not-a-vm").mkdir()
    with caplog.at_level(logging.WARNING):
        entries = remote.list_backups()
    assert [entry.timestamp for entry in entries] == ["20261129T010000Z", "20261129T020000Z"]
    assert remote.list_vms() == [VM]
    assert "20261129T030000Z.json" in caplog.text and "not valid JSON" in caplog.text
    assert remote.list_backups("0f3c4e42-0000-4000-8000-000000000000") == []
