"""Taking, tagging and destroying our snapshots (docs/backup-engine.md §4, §5).

Strategies, chosen by the VM's power state and what the pool knows:

* **halted VM** → ``VDI.snapshot`` per disk: ``[NOBAK]`` disks are not even snapshotted, and
  there is no snapshot VM (the metadata keeps the live VM's records);
* **running (or paused, suspended) VM** → ``VM.snapshot(vm, name, ignore_vdis)`` with the
  ``[NOBAK]`` disks ignored (the 2-argument form when there are none);
* **pool older than API 21.4.0** (``MESSAGE_PARAMETER_COUNT_MISMATCH`` to the 3-argument form)
  → ``VM.snapshot(vm, name)`` of every disk, then the ``[NOBAK]`` snapshot VDIs destroyed at once.

A snapshot is ours from birth: the live VM (or VDI) carries ``xoweb:backup:pending=<job id>``
for the instant of the call and XAPI copies it into the snapshot (tags.py); then the snapshot's
``other_config`` is set to our tags. ``VDI.destroy`` of a disk XAPI still holds (dom0 attached
it for an export that just ended) answers ``VDI_IN_USE``: it is retried for a few seconds, then
left to the janitor of the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pools.xapi import NULL_REF, XapiClient, XapiError, XapiFailure

from . import tags
from .errors import SnapshotFailed
from .progress import Progress
from .vm_disks import VmDisk

logger = logging.getLogger(__name__)

SNAPSHOT_TIMEOUT = 3600.0
DESTROY_RETRIES = 10


@dataclass
class SnapshotDisk:
    source: VmDisk
    vdi_ref: str
    vdi: dict[str, Any]

    @property
    def uuid(self) -> str:
        return self.vdi["uuid"]


@dataclass
class Snapshot:
    """What one backup run snapshotted."""

    strategy: str  # "vdi" (halted), "vm", "vm-then-drop" (old pool)
    vm_ref: str  # the snapshot VM; "" for per-disk snapshots
    vm_record: dict[str, Any]  # the snapshot VM's record, or the live VM's (per-disk)
    disks: dict[str, SnapshotDisk] = field(default_factory=dict)  # by source VDI uuid
    vbds: dict[str, dict[str, Any]] = field(default_factory=dict)  # VDI = the snapshot VDI ref

    @property
    def uuid(self) -> str:
        return self.vm_record.get("uuid", "") if self.vm_ref else ""

    @property
    def vdi_refs(self) -> list[str]:
        return [disk.vdi_ref for disk in self.disks.values()]


def snapshot_name(job_name: str, vm_name: str) -> str:
    """A name a person recognises in XO or XenCenter."""
    return f"[xoweb {job_name}] {vm_name}"


def take_snapshot(
    client: XapiClient,
    vm_ref: str,
    vm: dict[str, Any],
    disks: Sequence[VmDisk],
    nobak: Sequence[VmDisk],
    *,
    name: str,
    job_id: str,
    progress: Progress,
    timeout: float = SNAPSHOT_TIMEOUT,
) -> Snapshot:
    """Snapshot ``disks`` of the VM with the strategy its power state calls for."""
    try:
        if vm.get("power_state") == "Halted":
            return _snapshot_disks(client, vm, disks, name=name, job_id=job_id, timeout=timeout)
        return _snapshot_vm(
            client,
            vm_ref,
            vm,
            disks,
            nobak,
            name=name,
            job_id=job_id,
            progress=progress,
            timeout=timeout,
        )
    except XapiError as error:
        raise SnapshotFailed(
            f"the pool could not snapshot VM '{vm.get('name_label', '')}': {error}"
        ) from None


def _with_pending(client: XapiClient, cls: str, ref: str, job_id: str):
    """Mark a live object pending for the snapshot call; return the unmark function."""
    try:
        client.call(f"{cls}.remove_from_other_config", ref, tags.PENDING)
    except XapiFailure:
        pass
    client.call(f"{cls}.add_to_other_config", ref, tags.PENDING, job_id)

    def unmark() -> None:
        try:
            client.call(f"{cls}.remove_from_other_config", ref, tags.PENDING)
        except XapiError as error:  # the janitor strips it at the next run
            logger.warning("cannot remove %s from %s %s: %s", tags.PENDING, cls, ref, error)

    return unmark


def _snapshot_disks(
    client: XapiClient,
    vm: dict[str, Any],
    disks: Sequence[VmDisk],
    *,
    name: str,
    job_id: str,
    timeout: float,
) -> Snapshot:
    snapshot = Snapshot("vdi", "", vm)
    try:
        for disk in disks:
            unmark = _with_pending(client, "VDI", disk.vdi_ref, job_id)
            try:
                ref = client.call_async("VDI.snapshot", disk.vdi_ref, {}, timeout=timeout)
            finally:
                unmark()
            record = client.call("VDI.get_record", ref)
            snapshot.disks[disk.uuid] = SnapshotDisk(disk, ref, record)
            snapshot.vbds[disk.vbd_ref] = {**disk.vbd, "VDI": ref}
            client.call("VDI.set_name_label", ref, f"{name}: {disk.name}")
            record["name_label"] = f"{name}: {disk.name}"
    except BaseException:
        destroy_snapshot(client, "", snapshot.vdi_refs)
        raise
    return snapshot


def _snapshot_vm(
    client: XapiClient,
    vm_ref: str,
    vm: dict[str, Any],
    disks: Sequence[VmDisk],
    nobak: Sequence[VmDisk],
    *,
    name: str,
    job_id: str,
    progress: Progress,
    timeout: float,
) -> Snapshot:
    strategy = "vm"
    unmark = _with_pending(client, "VM", vm_ref, job_id)
    try:
        if not nobak:
            snap_ref = client.call_async("VM.snapshot", vm_ref, name, timeout=timeout)
        else:
            try:
                snap_ref = client.call_async(
                    "VM.snapshot", vm_ref, name, [disk.vdi_ref for disk in nobak], timeout=timeout
                )
            except XapiFailure as error:
                if error.code != "MESSAGE_PARAMETER_COUNT_MISMATCH":
                    raise
                progress.info(
                    "the pool does not know VM.snapshot's ignore_vdis (XAPI older than "
                    "21.4.0): snapshotting every disk, then destroying the [NOBAK] ones"
                )
                strategy = "vm-then-drop"
                snap_ref = client.call_async("VM.snapshot", vm_ref, name, timeout=timeout)
    finally:
        unmark()
    snapshot = Snapshot(strategy, snap_ref, client.call("VM.get_record", snap_ref))
    wanted = {disk.vdi_ref: disk for disk in disks}
    dropped = {disk.vdi_ref for disk in nobak}
    to_drop = []
    try:
        for vbd_ref in snapshot.vm_record.get("VBDs", []):
            vbd = client.call("VBD.get_record", vbd_ref)
            if vbd.get("type") != "Disk" or vbd.get("empty") or vbd.get("VDI") == NULL_REF:
                continue
            vdi = client.call("VDI.get_record", vbd["VDI"])
            source = vdi.get("snapshot_of", NULL_REF)
            if source in dropped:
                to_drop.append(vbd["VDI"])
            elif source in wanted:
                snapshot.disks[wanted[source].uuid] = SnapshotDisk(wanted[source], vbd["VDI"], vdi)
                snapshot.vbds[vbd_ref] = vbd
        destroy_vdis(client, to_drop)
        missing = [disk.label for disk in disks if disk.uuid not in snapshot.disks]
        if missing:
            raise SnapshotFailed(
                f"the snapshot of VM '{vm.get('name_label', '')}' lacks {', '.join(missing)} "
                "(the VM's disks changed during the snapshot?)"
            )
    except BaseException:
        destroy_snapshot(client, snap_ref, [*snapshot.vdi_refs, *to_drop])
        raise
    return snapshot


def tag_snapshot(
    client: XapiClient, snapshot: Snapshot, marks: Mapping[str, Mapping[str, str]]
) -> None:
    """Set our tags: ``marks`` maps each snapshot VDI ref (and the snapshot VM ref) to its
    tags. The whole ``other_config`` is set at once (one call per object): these objects are
    ours, and the inherited ``pending`` mark goes in the same write."""
    records = {disk.vdi_ref: ("VDI", disk.vdi) for disk in snapshot.disks.values()}
    if snapshot.vm_ref:
        records[snapshot.vm_ref] = ("VM", snapshot.vm_record)
    for ref, (cls, record) in records.items():
        other_config = {**tags.without_ours(record.get("other_config", {})), **marks[ref]}
        client.call(f"{cls}.set_other_config", ref, other_config)
        record["other_config"] = other_config


def mark_exported(client: XapiClient, snapshot: Snapshot) -> None:
    """Tag every snapshot VDI, then the snapshot VM, ``exported=true``: now a base."""
    refs = [("VDI", ref) for ref in snapshot.vdi_refs]
    if snapshot.vm_ref:
        refs.append(("VM", snapshot.vm_ref))
    for cls, ref in refs:
        try:
            client.call(f"{cls}.remove_from_other_config", ref, tags.EXPORTED)
        except XapiFailure:
            pass
        client.call(f"{cls}.add_to_other_config", ref, tags.EXPORTED, "true")


def destroy_vdis(client: XapiClient, vdi_refs: Sequence[str]) -> list[str]:
    """Destroy VDIs, retrying ``VDI_IN_USE`` a little; return those that could not be."""
    left = []
    for ref in vdi_refs:
        for attempt in range(DESTROY_RETRIES):
            try:
                client.call("VDI.destroy", ref)
                break
            except XapiFailure as error:
                if error.code == "HANDLE_INVALID":
                    break
                if error.code in ("VDI_IN_USE", "OTHER_OPERATION_IN_PROGRESS") and (
                    attempt < DESTROY_RETRIES - 1
                ):
                    time.sleep(0.2 * (attempt + 1))
                    continue
                logger.warning("cannot destroy snapshot VDI %s: %s", ref, error)
                left.append(ref)
                break
            except XapiError as error:
                logger.warning("cannot destroy snapshot VDI %s: %s", ref, error)
                left.append(ref)
                break
    return left


def destroy_snapshot(client: XapiClient, vm_ref: str, vdi_refs: Sequence[str]) -> list[str]:
    """Destroy a snapshot's disks and its VM (``VM.destroy`` keeps disks: docs/xapi.md §8.8),
    and a checkpoint's suspend VDI (its memory image) with them.

    Disks first, as XO does, so that an interruption leaves the tagged VM to find the rest;
    but a checkpoint (a snapshot VM left ``Suspended``) holds its disks attached until the VM
    goes, so its VM goes first. Returns what is left (the next janitor takes it).
    """
    suspend, checkpoint = "", False
    if vm_ref:
        try:
            record = client.call("VM.get_record", vm_ref)
            suspend = record.get("suspend_VDI", NULL_REF)
            checkpoint = record.get("power_state") == "Suspended"
        except XapiFailure as error:
            if error.code != "HANDLE_INVALID":
                logger.warning("cannot read snapshot VM %s: %s", vm_ref, error)
            vm_ref = "" if error.code == "HANDLE_INVALID" else vm_ref
        except XapiError as error:
            logger.warning("cannot read snapshot VM %s: %s", vm_ref, error)
    extra = [suspend] if suspend and suspend != NULL_REF else []
    if checkpoint:
        left = _destroy_vm(client, vm_ref)
        return left or destroy_vdis(client, [*vdi_refs, *extra])
    left = destroy_vdis(client, vdi_refs)
    if vm_ref and not left:
        left = _destroy_vm(client, vm_ref)
    if not left and extra:
        left = destroy_vdis(client, extra)
    return left


def _destroy_vm(client: XapiClient, vm_ref: str) -> list[str]:
    if not vm_ref:
        return []
    try:
        client.call("VM.destroy", vm_ref)
    except XapiFailure as error:
        if error.code != "HANDLE_INVALID":
            logger.warning("cannot destroy snapshot VM %s: %s", vm_ref, error)
            return [vm_ref]
    except XapiError as error:
        logger.warning("cannot destroy snapshot VM %s: %s", vm_ref, error)
        return [vm_ref]
    return []
