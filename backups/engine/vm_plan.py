"""Step 4 of a VM's backup: what the pool and every remote say about each disk, the plan made
from it (full or delta, and why), and this backup's timestamp (docs/backup-engine.md §1, §3).

``bases.py`` reads each fact and ``planner.py`` decides from them, purely; this module gathers
the facts for every disk of the VM from every remote still in. A remote whose backups cannot be
listed is dropped through the caller's ``drop``, as every step of the walk drops a remote it
cannot use (``vm_backup.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from pools.xapi import XapiClient

from . import layout
from .bases import check_remote_base, find_bases, previously_backed_up
from .errors import RemoteError
from .planner import DiskFacts, DiskPlan, plan_disks
from .remote import RemoteAdapter
from .values import BackupEntry, JobSettings, KnownBad, ScheduleSettings
from .vm_disks import VmDisk


def plan_vm_backup(
    client: XapiClient,
    disks: Sequence[VmDisk],
    *,
    vm_uuid: str,
    job: JobSettings,
    schedule: ScheduleSettings,
    remotes: Sequence[RemoteAdapter],
    known_bad: KnownBad | None,
    clock: Callable[[], float],
    drop: Callable[[RemoteAdapter, str], None],
    report: Callable[[str], None],
) -> tuple[list[DiskPlan], str]:
    """Facts from the pool and every remote → a plan per disk, and this backup's <ts>.

    Steps: find each disk's base on the pool; list the VM's backups and disk files on each
    remote in ``remotes`` (the ones still in; one that fails is dropped); check the base on
    each remote left, for a delta job not forced full; plan every disk and ``report`` each
    disk's reason; the timestamp, later than every name already taken on the remotes.
    """
    bases = find_bases(client, disks, job_id=job.id, vm_uuid=vm_uuid)
    entries: dict[str, list[BackupEntry]] = {}
    taken: list[str] = []
    dropped: set[str] = set()
    for remote in remotes:
        try:
            entries[remote.remote_id] = remote.list_backups(vm_uuid)
            for disk in disks:
                taken += [
                    PurePosixPath(p).stem for p in remote.disk_files(vm_uuid, job.id, disk.uuid)
                ]
        except RemoteError as error:
            dropped.add(remote.remote_id)
            drop(remote, str(error))
    live = [remote for remote in remotes if remote.remote_id not in dropped]
    every_entry = [entry for remote in live for entry in entries[remote.remote_id]]
    taken += [entry.timestamp for entry in every_entry]
    facts = []
    for disk in disks:
        base = bases.get(disk.uuid)
        remote_bases = ()
        if base is not None and job.mode == "delta" and not schedule.force_full:
            remote_bases = tuple(
                check_remote_base(
                    remote,
                    entries[remote.remote_id],
                    job_id=job.id,
                    vdi_uuid=disk.uuid,
                    base=base,
                    vm_uuid=vm_uuid,
                    known_bad=known_bad,
                )
                for remote in live
            )
        facts.append(
            DiskFacts(
                vdi_uuid=disk.uuid,
                vdi_name=disk.name,
                virtual_size=disk.virtual_size,
                base=base,
                previously_backed_up=previously_backed_up(
                    every_entry, job_id=job.id, vdi_uuid=disk.uuid
                ),
                remote_bases=remote_bases,
            )
        )
    plans = plan_disks(
        facts,
        job_name=job.name,
        job_mode=job.mode,
        schedule_name=schedule.name,
        force_full=schedule.force_full,
        full_interval=job.full_interval,
        max_chain_length=job.max_chain_length,
    )
    for disk, plan in zip(disks, plans, strict=True):
        report(f"{disk.label}: {plan.reason}")
    return plans, layout.next_timestamp(clock(), taken)
