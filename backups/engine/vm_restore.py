"""Restores of a whole VM, exact (docs/backup-engine.md §7).

**Backup → new VM**: ``VM.create`` from the metadata's VM record (XO's field set), named
``<name> (restored <backup date>)`` and tagged ``restored from backup``, each disk restored as
one disk is (``restore.py``: ``VDI.create`` and ``PUT /import_raw_vdi`` of the synthetic full
VHD) and plugged with ``VBD.create``, each VIF on the same network (by uuid, then by name; a
missing network is skipped with a warning). A failure destroys everything created.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pools.xapi import NULL_REF, XapiClient, XapiError, XapiFailure

from . import tags
from .errors import RestoreError
from .progress import NullProgress, Progress
from .remote import RemoteAdapter
from .restore import backup_date, find_sr, import_disk, open_disk_chain
from .snapshots import destroy_vdis
from .values import KnownBad

logger = logging.getLogger(__name__)

RESTORED_TAG = "restored from backup"

#: What XO's ``_createVmRecord`` passes to ``VM.create`` (fields with no default among them).
VM_CREATE_FIELDS = (
    "actions_after_crash",
    "actions_after_reboot",
    "actions_after_shutdown",
    "blocked_operations",
    "domain_type",
    "generation_id",
    "ha_always_run",
    "ha_restart_priority",
    "has_vendor_device",
    "hardware_platform_version",
    "HVM_boot_params",
    "HVM_boot_policy",
    "HVM_shadow_multiplier",
    "memory_dynamic_max",
    "memory_dynamic_min",
    "memory_static_max",
    "memory_static_min",
    "memory_target",
    "name_description",
    "order",
    "other_config",
    "PCI_bus",
    "platform",
    "PV_args",
    "PV_bootloader",
    "PV_bootloader_args",
    "PV_kernel",
    "PV_legacy_args",
    "PV_ramdisk",
    "recommendations",
    "shutdown_delay",
    "start_delay",
    "tags",
    "user_version",
    "VCPUs_at_startup",
    "VCPUs_max",
    "VCPUs_params",
    "version",
    "xenstore_data",
)
#: References that would point at the original pool's objects: cleared.
VM_NULL_REFS = ("affinity", "appliance", "protection_policy", "suspend_SR", "snapshot_schedule")
#: Keys of ``other_config`` that belong to the original VM, not to a restored copy.
FOREIGN_KEYS = ("mac_seed", "xo:backup:", tags.PREFIX)


def _wire(value: Any) -> Any:
    """Ints go to XAPI as strings (64-bit values do not fit XML-RPC's int: docs/xapi.md §4)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _wire(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wire(item) for item in value]
    return value


#: Values for the fields ``VM.create`` requires (docs/xapi.md §8.9) when a record lacks them.
VM_DEFAULTS: dict[str, Any] = {
    "user_version": 1,
    "VCPUs_params": {},
    "VCPUs_max": 1,
    "VCPUs_at_startup": 1,
    "actions_after_shutdown": "destroy",
    "actions_after_reboot": "restart",
    "actions_after_crash": "restart",
    "PV_bootloader": "",
    "PV_kernel": "",
    "PV_ramdisk": "",
    "PV_args": "",
    "PV_bootloader_args": "",
    "PV_legacy_args": "",
    "HVM_boot_policy": "",
    "HVM_boot_params": {},
    "platform": {},
    "PCI_bus": "",
    "recommendations": "",
}


def _vm_fields(record: Mapping[str, Any], name: str) -> dict[str, Any]:
    fields = {**VM_DEFAULTS, **{key: record[key] for key in VM_CREATE_FIELDS if key in record}}
    fields.update({key: NULL_REF for key in VM_NULL_REFS})
    fields["name_label"] = name
    fields["is_a_template"] = False
    fields["other_config"] = {
        key: value
        for key, value in (record.get("other_config") or {}).items()
        if not any(key == foreign or key.startswith(foreign) for foreign in FOREIGN_KEYS)
    }
    fields["tags"] = [*(t for t in record.get("tags") or [] if t != RESTORED_TAG), RESTORED_TAG]
    return _wire(fields)


def restore_vm(
    client: XapiClient,
    remote: RemoteAdapter,
    backup: str,
    sr_uuid: str,
    *,
    progress: Progress | None = None,
    name_label: str | None = None,
    networks: bool = True,
    new_macs: bool = False,
    mark: Mapping[str, str] | None = None,
    vm_tags: list[str] | None = None,
    known_bad: KnownBad | None = None,
) -> str:
    """A new VM from ``backup`` with its disks on ``sr_uuid``; returns the new VM's uuid.

    Steps: create the VM from the metadata's record; for each backed-up disk (its VBD in the
    metadata) restore the disk and plug it at the same position; recreate the VIFs on the same
    networks (unless ``networks`` is false: a restore test must not meet its original on the
    network), with the backup's MAC addresses, or with new ones if ``new_macs`` (an empty MAC:
    the pool derives one from the new VM's seed, docs/xapi.md §8.9), for a copy that will run
    beside its original. Everything created is destroyed if a step fails.

    ``mark``: ``other_config`` keys set on the VM and on each of its disks (a restore test finds
    its leftovers by them, even after a crash); ``vm_tags`` replace the VM's own.
    """
    progress = progress or NullProgress()
    data = remote.read_metadata(backup)
    entry = remote.backup(backup)
    sr_ref, sr = find_sr(client, sr_uuid)
    vm = data.get("vm") or {}
    name = name_label or f"{vm.get('name_label', entry.vm_name)} (restored {backup_date(entry)})"
    fields = _vm_fields(vm, name)
    if mark:
        fields["other_config"] = {**fields["other_config"], **mark}
    if vm_tags is not None:
        fields["tags"] = list(vm_tags)
    created_vdis: list[str] = []
    vm_ref = ""
    try:
        vm_ref = client.call("VM.create", fields)
        disks = {disk.vdi_ref: disk for disk in entry.disks}
        for vbd in (data.get("vbds") or {}).values():
            disk = disks.get(vbd.get("VDI", ""))
            if vbd.get("type") != "Disk" or disk is None:
                continue
            record = (data.get("vdis") or {}).get(disk.vdi_ref, {})
            with open_disk_chain(remote, disk, known_bad) as chain:
                vdi_ref, _uuid = import_disk(
                    client,
                    chain,
                    sr_ref,
                    sr,
                    name=record.get("name_label") or disk.vdi_name,
                    description=record.get("name_description", ""),
                    progress=progress,
                    label=f"restore disk {vbd.get('userdevice')} '{disk.vdi_name}' of {entry.timestamp}",
                    other_config=mark,
                )
            created_vdis.append(vdi_ref)
            client.call(
                "VBD.create",
                _wire(
                    {
                        "VM": vm_ref,
                        "VDI": vdi_ref,
                        "userdevice": str(vbd.get("userdevice", "autodetect")),
                        "bootable": bool(vbd.get("bootable", False)),
                        "mode": vbd.get("mode", "RW"),
                        "type": "Disk",
                        "empty": False,
                        "unpluggable": bool(vbd.get("unpluggable", True)),
                        "other_config": {},
                        "qos_algorithm_type": vbd.get("qos_algorithm_type", ""),
                        "qos_algorithm_params": vbd.get("qos_algorithm_params", {}),
                    }
                ),
            )
        for vif in (data.get("vifs") or {}).values() if networks else ():
            network = _network(client, vif)
            if network is None:
                progress.warning(
                    f"VIF {vif.get('device')} not restored: network "
                    f"'{vif.get('$network$name_label', '?')}' does not exist on this pool"
                )
                continue
            client.call(
                "VIF.create",
                _wire(
                    {
                        "device": str(vif.get("device", "0")),
                        "network": network,
                        "VM": vm_ref,
                        "MAC": "" if new_macs else vif.get("MAC", ""),
                        "MTU": vif.get("MTU", 1500),
                        "other_config": vif.get("other_config", {}),
                        "qos_algorithm_type": vif.get("qos_algorithm_type", ""),
                        "qos_algorithm_params": vif.get("qos_algorithm_params", {}),
                        **{
                            k: vif[k]
                            for k in ("locking_mode", "ipv4_allowed", "ipv6_allowed")
                            if k in vif
                        },
                    }
                ),
            )
        return client.call("VM.get_uuid", vm_ref)
    except BaseException as error:
        destroy_vdis(client, created_vdis)
        if vm_ref:
            try:
                client.call("VM.destroy", vm_ref)
            except XapiError as cleanup:
                logger.warning("cannot destroy the half-restored VM %s: %s", vm_ref, cleanup)
        if isinstance(error, XapiError):
            raise RestoreError(f"the restore of VM '{entry.vm_name}' failed: {error}") from None
        raise


def _network(client: XapiClient, vif: Mapping[str, Any]) -> str | None:
    uuid = vif.get("$network$uuid")
    if uuid:
        try:
            return client.call("network.get_by_uuid", uuid)
        except XapiFailure as error:
            if error.code != "UUID_INVALID":
                raise
    label = vif.get("$network$name_label")
    if label:
        found = client.call("network.get_by_name_label", label)
        if found:
            return found[0]
    return None
