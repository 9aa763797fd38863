"""The plan step of a VM's backup, alone: a remote that cannot list its backups is dropped, the
others are planned from, and the timestamp comes after every file name already taken there."""

from __future__ import annotations

from backups.engine import layout
from backups.engine.errors import RemoteError
from backups.engine.planner import DiskMode, FullReason
from backups.engine.values import JobSettings, ScheduleSettings
from backups.engine.vm_disks import VmDisk
from backups.engine.vm_plan import plan_vm_backup

NOW = 1_800_000_000.0


class ListedRemote:
    """Only what planning reads of a remote: its backups and the files of each disk's chain."""

    def __init__(self, remote_id: str, *, stems: tuple[str, ...] = (), fails: str = "") -> None:
        self.remote_id = remote_id
        self.stems = stems
        self.fails = fails

    def list_backups(self, vm_uuid: str) -> list:
        if self.fails:
            raise RemoteError(self.fails)
        return []

    def disk_files(self, vm_uuid: str, job_id: str, vdi_uuid: str) -> list[str]:
        return [f"{layout.disk_folder_in_vm(job_id, vdi_uuid)}/{stem}.vhd" for stem in self.stems]


def disk(uuid: str, device: str) -> VmDisk:
    # No snapshots: find_bases asks the pool nothing, every disk is a first backup.
    vdi = {"uuid": uuid, "name_label": f"data {device}", "virtual_size": 2**20, "snapshots": []}
    return VmDisk("OpaqueRef:vbd-" + device, "OpaqueRef:vdi-" + device, {"userdevice": device}, vdi)


def test_a_remote_that_cannot_list_is_dropped_and_the_others_planned_from():
    later = layout.format_timestamp(NOW + 60)  # a file already named after this run's moment
    kept = ListedRemote("kept", stems=(later,))
    broken = ListedRemote("broken", fails="remote /srv/broken is not readable: Permission denied")
    dropped, reported = [], []

    plans, timestamp = plan_vm_backup(
        None,  # type: ignore[arg-type]  # no snapshots: the pool is not asked
        [disk("vdi-a", "0"), disk("vdi-b", "1")],
        vm_uuid="vm-1",
        job=JobSettings(id="job-1", name="nightly", mode="delta"),
        schedule=ScheduleSettings(id="sched-1", name="daily"),
        remotes=[broken, kept],
        known_bad=None,
        clock=lambda: NOW,
        drop=lambda remote, why: dropped.append((remote.remote_id, why)),
        report=reported.append,
    )

    assert dropped == [("broken", "remote /srv/broken is not readable: Permission denied")]
    assert [(plan.vdi_uuid, plan.mode, plan.reason_code) for plan in plans] == [
        ("vdi-a", DiskMode.FULL, FullReason.FIRST_BACKUP),
        ("vdi-b", DiskMode.FULL, FullReason.FIRST_BACKUP),
    ]
    assert reported == [
        f"disk 0 'data 0': {plans[0].reason}",
        f"disk 1 'data 1': {plans[1].reason}",
    ]
    assert timestamp == layout.format_timestamp(NOW + 61)
