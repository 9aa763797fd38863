"""The VMs a job backs up, read from the pool cache at run time.

Only live rows count (the pools app's liveness rule, ``VM.objects.guests().live()``): a VM of a
disconnected pool, or one the cache shows greyed, is never backed up as if it were current.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backups.choices import VmSelection
from backups.models import BackupJob
from backups.services import bridge
from pools.models import VBD, VDI, VM

NOBAK = "[NOBAK]"


@dataclass
class Selection:
    """What a run will back up: live VMs, the VMs it cannot reach with why (explicit VMs: the
    run records them failed), and the VMs of a rule's pool it leaves out with why (the plan
    preview shows them struck out)."""

    vms: list[VM] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # vm uuid → why
    excluded: list[tuple[VM, str]] = field(default_factory=list)  # (vm, why), rules only
    reason: str = ""  # why there is nothing to do at all


def live_guests():
    return VM.objects.guests().live()


def resolve(job: BackupJob) -> Selection:
    """The job's VMs: explicit uuids, or the rule (pool, any of the tags, power state)."""
    selection = Selection()
    if job.vm_selection == VmSelection.EXPLICIT:
        found = {
            vm.uuid: vm for vm in live_guests().filter(uuid__in=job.vm_uuids).select_related("pool")
        }
        for vm_uuid in job.vm_uuids:
            if vm_uuid in found:
                selection.vms.append(found[vm_uuid])
            else:
                selection.missing[vm_uuid] = _why_missing(vm_uuid)
        if not job.vm_uuids:
            selection.reason = "the job has no VM"
        return selection

    pool = job.pool
    if pool is None:
        selection.reason = "the job's rule names no pool (was it deleted?)"
        return selection
    guests = VM.objects.guests().filter(pool=pool).select_related("pool").order_by("name_label")
    live = set(guests.live().values_list("pk", flat=True))
    wanted = set(job.vm_tags)
    # A restore test's VM lives for minutes and is never backed up (Xen Orchestra tags its own
    # `xo:no-bak` for the same reason).
    testing = bridge.health_check_tag()
    for vm in guests:
        why = _left_out(job, vm, wanted, vm.pk in live, testing)
        if why:
            selection.excluded.append((vm, why))
        else:
            selection.vms.append(vm)
    if not selection.vms:
        if not VM.objects.guests().live().filter(pool=pool).exists():
            selection.reason = (
                f"pool {pool.name} is {pool.get_status_display().lower()} or has no live VM: "
                "nothing can be backed up from it now"
            )
        else:
            selection.reason = f"no VM of pool {pool.name} matches the rule"
    return selection


def _left_out(job: BackupJob, vm: VM, wanted: set[str], live: bool, testing: str) -> str:
    """Why the rule leaves ``vm`` out ("" when it takes it)."""
    if testing in vm.tags:
        return "the VM of a restore test (never backed up)"
    if not live:
        return "not live: its pool is not connected or its watcher is not running"
    if job.vm_power_state and vm.power_state != job.vm_power_state:
        return f"{vm.power_state}: the rule takes {job.vm_power_state.lower()} VMs only"
    # Tags are a JSON list; matched here because SQLite cannot search inside JSON lists.
    if wanted and not wanted & set(vm.tags):
        return f"not tagged {' or '.join(sorted(wanted))}"
    return ""


def _why_missing(vm_uuid: str) -> str:
    row = VM.objects.filter(uuid=vm_uuid).select_related("pool").first()
    if row is None:
        return f"VM {vm_uuid} is not in any pool's cache (deleted, or its pool is not added)"
    return (
        f"VM {row.name_label} ({vm_uuid}) is not live: pool {row.pool.name} is "
        f"{row.pool.get_status_display().lower()} or its watcher is not running"
    )


def disks_of(vms: list[VM]) -> dict[int, list[VDI]]:
    """The managed disks of each VM (by VM pk) in device order, in two queries, for sizes and
    names; each VDI carries the ``userdevice`` of its VBD."""
    if not vms:
        return {}
    vbds = list(
        VBD.objects.filter(
            pool_id__in={vm.pool_id for vm in vms}, vm_ref__in={vm.ref for vm in vms}, type="Disk"
        )
        .exclude(vdi_ref="")
        .values_list("pool_id", "vm_ref", "vdi_ref", "userdevice")
    )
    vdis = {
        (vdi.pool_id, vdi.ref): vdi
        for vdi in VDI.objects.filter(
            pool_id__in={pool_id for pool_id, _, _, _ in vbds},
            ref__in={vdi_ref for _, _, vdi_ref, _ in vbds},
            managed=True,
        ).only("pool_id", "ref", "uuid", "name_label", "virtual_size")
    }
    by_vm = {(vm.pool_id, vm.ref): vm.pk for vm in vms}
    disks: dict[int, list[VDI]] = {vm.pk: [] for vm in vms}
    for pool_id, vm_ref, vdi_ref, userdevice in sorted(vbds, key=lambda row: _device(row[3])):
        vdi = vdis.get((pool_id, vdi_ref))
        if vdi is not None:
            vdi.userdevice = userdevice
            disks[by_vm[(pool_id, vm_ref)]].append(vdi)
    return disks


def _device(userdevice: str) -> tuple[int, str]:
    """Device order, as the engine reads a VM's disks (0, 1, 2 … then names)."""
    return (int(userdevice), "") if userdevice.isdigit() else (1 << 30, userdevice)


def nobak(disk: VDI) -> str:
    """Why a disk is not backed up ("" when it is): the engine's [NOBAK] rule, for the pages."""
    return f"its name contains {NOBAK}" if NOBAK in disk.name_label else ""


def expected_bytes(disks: list[VDI]) -> int:
    """What a full backup of these disks transfers at most (the [NOBAK] ones are left out)."""
    return sum(disk.virtual_size for disk in disks if NOBAK not in disk.name_label)
