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
    """What a run will back up: live VMs, and the VMs it cannot reach with why."""

    vms: list[VM] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)  # vm uuid → why
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
    candidates = live_guests().filter(pool=pool).select_related("pool").order_by("name_label")
    if job.vm_power_state:
        candidates = candidates.filter(power_state=job.vm_power_state)
    wanted = set(job.vm_tags)
    # A restore test's VM lives for minutes and is never backed up (Xen Orchestra tags its own
    # `xo:no-bak` for the same reason).
    testing = bridge.health_check_tag()
    # Tags are a JSON list; filtered here because SQLite cannot search inside JSON lists.
    selection.vms = [
        vm for vm in candidates if (not wanted or wanted & set(vm.tags)) and testing not in vm.tags
    ]
    if not selection.vms:
        if not VM.objects.guests().live().filter(pool=pool).exists():
            selection.reason = (
                f"pool {pool.name} is {pool.get_status_display().lower()} or has no live VM: "
                "nothing can be backed up from it now"
            )
        else:
            selection.reason = f"no VM of pool {pool.name} matches the rule"
    return selection


def _why_missing(vm_uuid: str) -> str:
    row = VM.objects.filter(uuid=vm_uuid).select_related("pool").first()
    if row is None:
        return f"VM {vm_uuid} is not in any pool's cache (deleted, or its pool is not added)"
    return (
        f"VM {row.name_label} ({vm_uuid}) is not live: pool {row.pool.name} is "
        f"{row.pool.get_status_display().lower()} or its watcher is not running"
    )


def disks_of(vms: list[VM]) -> dict[int, list[VDI]]:
    """The managed disks of each VM (by VM pk), in two queries, for sizes and names."""
    if not vms:
        return {}
    vbds = list(
        VBD.objects.filter(
            pool_id__in={vm.pool_id for vm in vms}, vm_ref__in={vm.ref for vm in vms}, type="Disk"
        )
        .exclude(vdi_ref="")
        .values_list("pool_id", "vm_ref", "vdi_ref")
    )
    vdis = {
        (vdi.pool_id, vdi.ref): vdi
        for vdi in VDI.objects.filter(
            pool_id__in={pool_id for pool_id, _, _ in vbds},
            ref__in={vdi_ref for _, _, vdi_ref in vbds},
            managed=True,
        ).only("pool_id", "ref", "uuid", "name_label", "virtual_size")
    }
    by_vm = {(vm.pool_id, vm.ref): vm.pk for vm in vms}
    disks: dict[int, list[VDI]] = {vm.pk: [] for vm in vms}
    for pool_id, vm_ref, vdi_ref in vbds:
        vdi = vdis.get((pool_id, vdi_ref))
        if vdi is not None:
            disks[by_vm[(pool_id, vm_ref)]].append(vdi)
    return disks


def expected_bytes(disks: list[VDI]) -> int:
    """What a full backup of these disks transfers at most (the [NOBAK] ones are left out)."""
    return sum(disk.virtual_size for disk in disks if NOBAK not in disk.name_label)
