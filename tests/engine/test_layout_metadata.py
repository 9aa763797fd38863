"""XO's layout and metadata, pure: names, timestamps, and reading metadata back."""

from __future__ import annotations

import xmlrpc.client
from datetime import UTC, datetime

import pytest

from backups.engine import layout
from backups.engine.errors import MetadataError
from backups.engine.metadata import build_metadata, entry_from_metadata, record_json
from backups.engine.tags import tag_datetime, timestamp_of

VM = "0f3c4e42-1111-4222-8333-444455556666"
JOB = "6a1c2f0e-0000-4000-8000-000000000001"
VDI = "b1a2c3d4-0000-4000-8000-00000000000a"


def test_paths_follow_xo_s_layout():
    assert (
        layout.metadata_path(VM, "20261129T010000Z") == f"xo-vm-backups/{VM}/20261129T010000Z.json"
    )
    assert layout.vhd_path(VM, JOB, VDI, "20261129T010000Z") == (
        f"xo-vm-backups/{VM}/vdis/{JOB}/{VDI}/20261129T010000Z.vhd"
    )
    assert (
        layout.vhd_in_vm(JOB, VDI, "20261129T010000Z") == f"vdis/{JOB}/{VDI}/20261129T010000Z.vhd"
    )
    assert layout.lock_path(VM) == f"xo-vm-backups/{VM}.lock"
    name = layout.temporary_name("20261129T010000Z.vhd")
    assert name.startswith(".20261129T010000Z.vhd.") and layout.is_temporary(name)
    assert not layout.is_temporary("20261129T010000Z.vhd")
    with pytest.raises(ValueError, match="is not a backup path"):
        layout.split_vm_path("elsewhere/x.json")


def test_timestamps_are_utc_and_strictly_increasing():
    moment = datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC)
    assert layout.format_timestamp(moment) == "20261129T010203Z"
    assert layout.format_timestamp(moment.timestamp()) == "20261129T010203Z"
    assert layout.parse_timestamp("20261129T010203Z") == moment
    with pytest.raises(ValueError, match="'2026-11-29' is not a backup timestamp"):
        layout.parse_timestamp("2026-11-29")
    # A second backup in the same second, or a clock that went back, still sorts after.
    taken = ["20261129T010203Z", "garbage"]
    assert layout.next_timestamp(moment.timestamp(), taken) == "20261129T010204Z"
    assert layout.next_timestamp(moment.timestamp() - 3600, taken) == "20261129T010204Z"
    assert layout.next_timestamp(moment.timestamp() + 10, taken) == "20261129T010213Z"
    assert tag_datetime("20261129T010203Z") == "20261129T01:02:03Z"
    assert timestamp_of("20261129T01:02:03Z") == "20261129T010203Z"


def metadata(**changes):
    data = build_metadata(
        job_id=JOB,
        job_mode="delta",
        schedule_id="s",
        timestamp="20261129T010203Z",
        vm={
            "uuid": VM,
            "name_label": "web",
            "memory_static_max": "4294967296",
            "snapshot_time": xmlrpc.client.DateTime("20261129T01:02:03Z"),
        },
        vm_snapshot={"uuid": "snap", "name_label": "[xoweb nightly] web"},
        vbds={"OpaqueRef:vbd": {"VDI": "OpaqueRef:vdi", "type": "Disk", "userdevice": "0"}},
        vdis={
            "OpaqueRef:vdi": {
                "uuid": "snapvdi",
                "name_label": "root",
                "virtual_size": "16777216",
                "$snapshot_of$uuid": VDI,
            }
        },
        vifs={},
        vhds={"OpaqueRef:vdi": f"vdis/{JOB}/{VDI}/20261129T010203Z.vhd"},
        differencing={"OpaqueRef:vdi": True},
        disks={
            "OpaqueRef:vdi": {
                "sha256": "ab",
                "mode": "delta",
                "reason": "delta on x",
                "reasonCode": None,
                "size": 42,
            }
        },
        size=42,
    )
    data.update(changes)
    return data


def test_metadata_reads_back_as_an_entry():
    data = metadata()
    assert data["timestamp"] == int(datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC).timestamp() * 1000)
    assert data["vm"]["memory_static_max"] == 4294967296  # a number, as in XO's files
    assert data["vm"]["snapshot_time"] == "20261129T01:02:03Z"
    entry = entry_from_metadata(f"xo-vm-backups/{VM}/20261129T010203Z.json", data)
    assert (entry.vm_uuid, entry.vm_name, entry.timestamp, entry.job_id) == (
        VM,
        "web",
        "20261129T010203Z",
        JOB,
    )
    assert entry.written_by == "xoweb" and entry.mode == "delta" and entry.size == 42
    (disk,) = entry.disks
    assert disk.vdi_uuid == VDI and disk.snapshot_vdi_uuid == "snapvdi"
    assert disk.path == f"xo-vm-backups/{VM}/vdis/{JOB}/{VDI}/20261129T010203Z.vhd"
    assert (disk.differencing, disk.size, disk.sha256) == (True, 16777216, "ab")
    assert entry.disk(VDI) is disk and entry.disk("snapvdi") is disk
    with pytest.raises(KeyError, match=f"holds no disk nope .it holds: {VDI}"):
        entry.disk("nope")


def test_xo_s_own_metadata_is_read_too():
    data = metadata()
    del data["xoweb"]
    entry = entry_from_metadata(f"xo-vm-backups/{VM}/20261129T010203Z.json", data)
    assert entry.written_by == "xo" and entry.disks[0].sha256 == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"vhds": None}, "field 'vhds' should be a Mapping"),
        ({"version": "1.0.0"}, "metadata version '1.0.0' is not 2.x"),
        ({"mode": "full"}, "mode 'full' (an XVA backup) is not read by xoweb"),
        ({"vdis": {}}, "vhds names OpaqueRef:vdi but vdis has no record for it"),
        ({"vhds": {"OpaqueRef:vdi": "../../etc/passwd"}}, "is not a path inside the VM folder"),
    ],
)
def test_bad_metadata_is_named(change, message):
    with pytest.raises(MetadataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        entry_from_metadata(f"xo-vm-backups/{VM}/20261129T010203Z.json", metadata(**change))
    with pytest.raises(MetadataError, match="field 'jobId' is missing"):
        data = metadata()
        del data["jobId"]
        entry_from_metadata(f"xo-vm-backups/{VM}/20261129T010203Z.json", data)
    with pytest.raises(MetadataError, match="file name is not a backup timestamp"):
        entry_from_metadata(f"xo-vm-backups/{VM}/latest.json", metadata())


def test_record_json_keeps_maps_of_strings_as_strings():
    record = record_json({"virtual_size": "123", "other_config": {"virtual_size": "7"}, "MTU": "x"})
    assert record == {"virtual_size": 123, "other_config": {"virtual_size": "7"}, "MTU": "x"}
