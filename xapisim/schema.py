"""The XAPI classes the simulator serves, their fields and defaults (docs/xapi.md §8).

Records are plain dicts of wire-typed values: str (also enums, refs, uuids), int (64-bit, goes
out untyped like a string), float, bool, DateTime, list (sets), dict (maps). A field's default
also gives its type, which setters use to coerce lenient input (ints sent as strings,
docs/xapi.md §2.2).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

from .wire import EPOCH

NULL = "OpaqueRef:NULL"

# Canonical XAPI class names, keyed by the lower-case name events and lookups use.
CLASSES = {
    name.lower(): name
    for name in (
        "pool",
        "host",
        "SR",
        "PBD",
        "VDI",
        "VBD",
        "VM",
        "VIF",
        "network",
        "task",
        "session",
    )
}

# Tables that are not persisted (XAPI's PersistNothing): gone after a toolstack restart.
VOLATILE = frozenset({"task", "session"})
# Tables that produce no events (sessions, docs/xapi.md §7.2).
SILENT = frozenset({"session"})


def new_uuid() -> str:
    """A random (version 4) UUID; formatted by hand because uuid.uuid4() is 3x slower and a
    10,000-VM pool needs 130,000 of them at start-up."""
    digits = os.urandom(16).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:32]}"


def new_ref() -> str:
    return f"OpaqueRef:{new_uuid()}"


_COMMON = {"uuid": "", "other_config": {}}
_NAMED = {"name_label": "", "name_description": "", "tags": []}

DEFAULTS: dict[str, dict[str, Any]] = {
    "pool": {
        **_COMMON,
        **_NAMED,
        "master": NULL,
        "default_SR": NULL,
        "suspend_image_SR": NULL,
        "crash_dump_SR": NULL,
        "ha_enabled": False,
        "ha_configuration": {},
        "gui_config": {},
        "blobs": {},
        "wlb_enabled": False,
        "restrictions": {},
        "allowed_operations": [],
        "current_operations": {},
        "cpu_info": {},
    },
    "host": {
        **_COMMON,
        **_NAMED,
        "hostname": "",
        "address": "",
        "enabled": True,
        "API_version_major": 2,
        "API_version_minor": 21,
        "API_version_vendor": "XenSource",
        "software_version": {},
        "resident_VMs": [],
        "control_domain": NULL,
        "PBDs": [],
        "PIFs": [],
        "memory_overhead": 0,
        "cpu_info": {},
        "allowed_operations": [],
        "current_operations": {},
        "logging": {},
        "suspend_image_sr": NULL,
        "crash_dump_sr": NULL,
        "metrics": NULL,
        "https_only": False,
    },
    "SR": {
        **_COMMON,
        **_NAMED,
        "type": "ext",
        "content_type": "user",
        "shared": False,
        "physical_size": 0,
        "physical_utilisation": 0,
        "virtual_allocation": 0,
        "VDIs": [],
        "PBDs": [],
        "sm_config": {},
        "allowed_operations": ["vdi_create", "vdi_destroy", "vdi_snapshot", "vdi_clone"],
        "current_operations": {},
        "blobs": {},
        "local_cache_enabled": False,
        "is_tools_sr": False,
        "clustered": False,
    },
    "PBD": {
        **_COMMON,
        "host": NULL,
        "SR": NULL,
        "device_config": {},
        "currently_attached": True,
    },
    "VDI": {
        **_COMMON,
        **_NAMED,
        "SR": NULL,
        "VBDs": [],
        "crash_dumps": [],
        "virtual_size": 0,
        "physical_utilisation": 0,
        "type": "user",
        "sharable": False,
        "read_only": False,
        "managed": True,
        "missing": False,
        "parent": NULL,
        "location": "",
        "is_a_snapshot": False,
        "snapshot_of": NULL,
        "snapshots": [],
        "snapshot_time": EPOCH,
        "sm_config": {},
        "xenstore_data": {},
        "storage_lock": False,
        "on_boot": "persist",
        "allow_caching": False,
        "metadata_of_pool": NULL,
        "metadata_latest": False,
        "is_tools_iso": False,
        "cbt_enabled": False,
        "allowed_operations": ["clone", "snapshot", "destroy", "copy", "update"],
        "current_operations": {},
    },
    "VBD": {
        **_COMMON,
        "VM": NULL,
        "VDI": NULL,
        "device": "",
        "userdevice": "0",
        "bootable": False,
        "mode": "RW",
        "type": "Disk",
        "unpluggable": True,
        "storage_lock": False,
        "empty": False,
        "currently_attached": False,
        "status_code": 0,
        "status_detail": "",
        "runtime_properties": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
        "qos_supported_algorithms": [],
        "metrics": NULL,
        "allowed_operations": [],
        "current_operations": {},
    },
    "VM": {
        **_COMMON,
        **_NAMED,
        "power_state": "Halted",
        "user_version": 1,
        "is_a_template": False,
        "is_default_template": False,
        "is_a_snapshot": False,
        "is_control_domain": False,
        "snapshot_of": NULL,
        "snapshots": [],
        "snapshot_time": EPOCH,
        "snapshot_info": {},
        "snapshot_metadata": "",
        "transportable_snapshot_id": "",
        "parent": NULL,
        "children": [],
        "suspend_VDI": NULL,
        "suspend_SR": NULL,
        "resident_on": NULL,
        "scheduled_to_be_resident_on": NULL,
        "affinity": NULL,
        "memory_overhead": 0,
        "memory_target": 0,
        "memory_static_max": 0,
        "memory_dynamic_max": 0,
        "memory_dynamic_min": 0,
        "memory_static_min": 0,
        "VCPUs_params": {},
        "VCPUs_max": 1,
        "VCPUs_at_startup": 1,
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "consoles": [],
        "VIFs": [],
        "VBDs": [],
        "VUSBs": [],
        "crash_dumps": [],
        "VTPMs": [],
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cdn"},
        "HVM_shadow_multiplier": 1.0,
        "platform": {},
        "PCI_bus": "",
        "domid": -1,
        "domarch": "",
        "last_boot_CPU_flags": {},
        "metrics": NULL,
        "guest_metrics": NULL,
        "last_booted_record": "",
        "recommendations": "",
        "xenstore_data": {},
        "ha_always_run": False,
        "ha_restart_priority": "",
        "blocked_operations": {},
        "bios_strings": {},
        "protection_policy": NULL,
        "is_snapshot_from_vmpp": False,
        "snapshot_schedule": NULL,
        "is_vmss_snapshot": False,
        "appliance": NULL,
        "start_delay": 0,
        "shutdown_delay": 0,
        "order": 0,
        "generation_id": "",
        "hardware_platform_version": 0,
        "has_vendor_device": False,
        "requires_reboot": False,
        "reference_label": "",
        "domain_type": "hvm",
        "NVRAM": {},
        "allowed_operations": [],
        "current_operations": {},
    },
    "VIF": {
        **_COMMON,
        "device": "0",
        "network": NULL,
        "VM": NULL,
        "MAC": "",
        "MTU": 1500,
        "currently_attached": False,
        "MAC_autogenerated": True,
        "locking_mode": "network_default",
        "allowed_operations": [],
        "current_operations": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
        "metrics": NULL,
    },
    "network": {
        **_COMMON,
        **_NAMED,
        "bridge": "",
        "MTU": 1500,
        "VIFs": [],
        "PIFs": [],
        "managed": True,
        "blobs": {},
        "default_locking_mode": "unlocked",
        "allowed_operations": [],
        "current_operations": {},
    },
    "task": {
        **_COMMON,
        "name_label": "",
        "name_description": "",
        "allowed_operations": [],
        "current_operations": {},
        "created": EPOCH,
        "finished": EPOCH,
        "status": "pending",
        "resident_on": NULL,
        "progress": 0.0,
        "type": "<none/>",
        "result": "",
        "error_info": [],
        "subtask_of": NULL,
        "subtasks": [],
        "backtrace": "()",
    },
    "session": {
        **_COMMON,
        "this_host": NULL,
        "this_user": NULL,
        "last_active": EPOCH,
        "pool": False,
        "is_local_superuser": True,
        "subject": NULL,
        "validation_time": EPOCH,
        "auth_user_sid": "",
        "auth_user_name": "root",
        "rbac_permissions": [],
        "tasks": [],
        "parent": NULL,
        "originator": "",
        "client_certificate": False,
    },
}

# Fields that have a setter (`X.set_<field>`), like XAPI's read/write fields.
WRITABLE: dict[str, frozenset[str]] = {
    "pool": frozenset(
        {"name_label", "name_description", "other_config", "tags", "default_SR", "gui_config"}
    ),
    "host": frozenset({"name_label", "name_description", "other_config", "tags", "logging"}),
    "SR": frozenset({"name_label", "name_description", "other_config", "tags", "sm_config"}),
    "PBD": frozenset({"other_config"}),
    "VDI": frozenset(
        {
            "name_label",
            "name_description",
            "other_config",
            "tags",
            "sm_config",
            "xenstore_data",
            "on_boot",
            "allow_caching",
            "sharable",
            "read_only",
        }
    ),
    "VBD": frozenset({"other_config", "userdevice", "bootable", "mode", "type", "unpluggable"}),
    "VM": frozenset(
        {
            "name_label",
            "name_description",
            "other_config",
            "tags",
            "blocked_operations",
            "xenstore_data",
            "platform",
            "VCPUs_params",
            "HVM_boot_params",
            "memory_static_max",
            "memory_dynamic_max",
            "memory_dynamic_min",
            "memory_static_min",
            "VCPUs_max",
            "VCPUs_at_startup",
            "is_a_template",
            "affinity",
            "PV_args",
            "suspend_SR",
            "ha_restart_priority",
            "start_delay",
            "shutdown_delay",
            "order",
            "user_version",
        }
    ),
    "VIF": frozenset({"other_config", "locking_mode", "MTU"}),
    "network": frozenset({"name_label", "name_description", "other_config", "tags", "MTU"}),
    "task": frozenset(
        {"other_config", "progress", "status", "result", "error_info", "name_description"}
    ),
    "session": frozenset({"other_config"}),
}


_CONTAINERS = {
    cls: tuple(key for key, value in fields.items() if isinstance(value, dict | list))
    for cls, fields in DEFAULTS.items()
}


def new_record(cls: str, **fields: Any) -> dict[str, Any]:
    """A fresh record of `cls` with XAPI's defaults, a new UUID and the given fields."""
    # Shallow copy plus fresh containers: deepcopy is too slow for 10,000-VM pools.
    record = DEFAULTS[cls].copy()
    for key in _CONTAINERS[cls]:
        record[key] = record[key].copy()
    record["uuid"] = new_uuid()
    unknown = set(fields) - set(record)
    if unknown:
        raise KeyError(f"{cls} has no field(s) {sorted(unknown)}")
    record.update(fields)
    return record


def coerce(cls: str, field: str, value: Any) -> Any:
    """Convert a lenient client value to the field's type (ints as strings, ints for floats)."""
    default = DEFAULTS[cls][field]
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.lower() in ("true", "1")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, dict):
        return {str(k): str(v) for k, v in dict(value).items()}
    if isinstance(default, list):
        return [str(v) for v in value]
    return value if isinstance(value, str) else str(value)


def create_fields(cls: str, record: dict[str, Any], server_set: Collection[str]) -> dict[str, Any]:
    """The fields a client's `cls.create` record may set: those `cls` has, less `server_set`
    (the ones the server fills in itself), each coerced; anything else is ignored."""
    return {
        name: coerce(cls, name, value)
        for name, value in dict(record).items()
        if name in DEFAULTS[cls] and name not in server_set
    }
