"""The base of each disk's next delta, on the pool and on every remote (docs/backup-engine.md §3).

On the pool (XO's rule, ``_selectBaseVm``): among the snapshot VDIs of each live disk, those
tagged by this job for this VM and ``exported``, grouped by ``datetime``; the newest group is
the base group, and each disk's base is its VDI in that group (none: the disk is new, or its
snapshot was deleted).

On each remote: a committed backup of this job (its metadata exists) whose disk is the base
snapshot VDI — XO's metadata names it by uuid — and whose VHD chain opens, ending in a file
whose footer UUID is that snapshot's. A file issue 13's verification found bad (``known_bad``)
does not count either, nor a base with a newer backup of the disk after it (its snapshot was
never marked exported): a delta on it would fork the chain. The remote side never trusts a file
no metadata names.
"""

from __future__ import annotations

from collections.abc import Sequence

from pools.xapi import XapiClient, XapiFailure

from . import tags
from .planner import BaseSnapshot, RemoteBase, RemoteBaseStatus
from .remote import RemoteAdapter
from .values import BackupEntry, KnownBad
from .vm_disks import VmDisk


def find_bases(
    client: XapiClient, disks: Sequence[VmDisk], *, job_id: str, vm_uuid: str
) -> dict[str, BaseSnapshot]:
    """Base snapshot per live disk uuid, from the newest exported group of this job."""
    candidates: dict[str, list[tuple[str, dict]]] = {}
    for disk in disks:
        for ref in disk.vdi.get("snapshots", []):
            try:
                record = client.call("VDI.get_record", ref)
            except XapiFailure as error:
                if error.code == "HANDLE_INVALID":
                    continue
                raise
            other = record.get("other_config", {})
            if (
                not record.get("managed", True)
                or not record.get("is_a_snapshot")
                or other.get(tags.JOB) != job_id
                or other.get(tags.VM) != vm_uuid
                or not tags.is_exported(other)
                or not tags.backup_timestamp(other)
            ):
                continue
            candidates.setdefault(disk.uuid, []).append((ref, record))
    stamps = {
        tags.backup_timestamp(record.get("other_config", {}))
        for found in candidates.values()
        for _ref, record in found
    }
    if not stamps:
        return {}
    newest = max(stamps)
    bases = {}
    for disk_uuid, found in candidates.items():
        for ref, record in found:
            other = record.get("other_config", {})
            if tags.backup_timestamp(other) == newest:
                bases[disk_uuid] = BaseSnapshot(
                    vdi_ref=ref,
                    vdi_uuid=record["uuid"],
                    virtual_size=int(record.get("virtual_size", 0)),
                    chain_length=tags.chain_length(other),
                    datetime=newest,
                )
    return bases


def check_remote_base(
    remote: RemoteAdapter,
    entries: Sequence[BackupEntry],
    *,
    job_id: str,
    vdi_uuid: str,
    base: BaseSnapshot,
    vm_uuid: str,
    known_bad: KnownBad | None = None,
) -> RemoteBase:
    """Is the base's VHD usable as a parent on ``remote``? ``entries``: its backups of the VM."""
    from backups import vhd  # reads only

    from .layout import vhd_path

    expected = vhd_path(vm_uuid, job_id, vdi_uuid, base.datetime)

    def status(kind: RemoteBaseStatus, path: str = expected, detail: str = "") -> RemoteBase:
        return RemoteBase(remote.remote_id, remote.name, kind, path, detail)

    path = ""
    newer = ""
    for entry in reversed(entries):  # newest first
        if entry.job_id != job_id:
            continue
        for disk in entry.disks:
            if disk.vdi_uuid != vdi_uuid:
                continue
            if disk.snapshot_vdi_uuid == base.vdi_uuid:
                path = disk.path
            elif entry.timestamp > base.datetime:
                newer = newer or entry.timestamp
        if path:
            break
    if not path or not remote.path(path).is_file():
        return status(RemoteBaseStatus.MISSING, path or expected)
    if newer:
        # The chain there already goes on past the base: a delta on it would fork the chain.
        return status(RemoteBaseStatus.SUPERSEDED, path, newer)
    try:
        chain = vhd.open_chain(remote.path(path))
    except (OSError, vhd.VhdError) as error:
        return status(RemoteBaseStatus.INVALID, path, str(error).replace(str(remote.root), "…"))
    with chain:
        if str(chain.uuid) != base.vdi_uuid:
            return status(
                RemoteBaseStatus.INVALID,
                path,
                f"its footer UUID is {chain.uuid}, not the base snapshot's {base.vdi_uuid}",
            )
        layers = [layer.path for layer in chain.layers]
        timestamp = chain.newest.footer.timestamp
    if known_bad is not None:
        for layer in layers:
            relative = layer.relative_to(remote.root).as_posix()
            if known_bad(remote.remote_id, relative):
                detail = "" if relative == path else f"its ancestor {layer.name} did"
                return status(RemoteBaseStatus.UNVERIFIED, path, detail)
    return RemoteBase(remote.remote_id, remote.name, RemoteBaseStatus.OK, path, "", timestamp)


def previously_backed_up(entries: Sequence[BackupEntry], *, job_id: str, vdi_uuid: str) -> bool:
    """Does a committed backup of this job hold this disk?"""
    return any(
        entry.job_id == job_id and any(disk.vdi_uuid == vdi_uuid for disk in entry.disks)
        for entry in entries
    )
