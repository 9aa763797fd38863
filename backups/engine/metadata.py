"""Build and read a backup's metadata: XO's format 2.0.0 plus our fields (docs/remote-format.md §2).

XO's fields are kept as XO writes them, so that Xen Orchestra lists and restores our backups:
``version``, ``jobId``, ``scheduleId``, ``mode`` (``"delta"``: our full-mode backups are VHDs
too, with ``isVhdDifferencing`` false), ``timestamp`` (ms), ``vm``, ``vmSnapshot``, ``size``,
``tags``, ``vbds``, ``vdis``, ``vifs``, ``vhds``, ``isVhdDifferencing``, ``vtpms``. Ours live
under one key XO ignores::

    "xoweb": {"version": 1, "jobMode": "delta",
              "disks": {vdiRef: {"sha256", "mode", "reason", "reasonCode", "size"}}}

``entry_from_metadata`` reads either (ours or XO's own) into a ``BackupEntry``; a file that is
not a backup raises ``MetadataError`` naming the field.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Mapping
from typing import Any

from .errors import MetadataError
from .layout import BACKUP_ROOT, is_timestamp, parse_timestamp
from .values import BackupDisk, BackupEntry

VERSION = "2.0.0"
XOWEB_VERSION = 1


#: Integer fields of VM, VBD, VDI and VIF records. XML-RPC carries 64-bit ints as strings
#: (docs/xapi.md §4); XO's metadata (JSON-RPC) has numbers, so ours has too.
INT_FIELDS = frozenset(
    (
        "virtual_size",
        "physical_utilisation",
        "memory_overhead",
        "memory_target",
        "memory_static_max",
        "memory_dynamic_max",
        "memory_dynamic_min",
        "memory_static_min",
        "VCPUs_max",
        "VCPUs_at_startup",
        "user_version",
        "domid",
        "order",
        "start_delay",
        "shutdown_delay",
        "version",
        "MTU",
        "generation",
        "hardware_platform_version",
    )
)


def record_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """One XAPI record as XO stores it: ints as numbers, datetimes as XAPI's text."""
    out = {}
    for key, value in record.items():
        if key in INT_FIELDS and isinstance(value, str) and value.lstrip("-").isdigit():
            value = int(value)
        out[str(key)] = jsonable(value)
    return out


def records_json(records: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(ref): record_json(record) for ref, record in records.items()}


def jsonable(value: Any) -> Any:
    """A XAPI record as JSON: XML-RPC datetimes become XAPI's text form (what XO stores)."""
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, xmlrpc.client.DateTime):
        return value.value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def build_metadata(
    *,
    job_id: str,
    job_mode: str,
    schedule_id: str,
    timestamp: str,
    vm: Mapping[str, Any],
    vm_snapshot: Mapping[str, Any],
    vbds: Mapping[str, Mapping[str, Any]],
    vdis: Mapping[str, Mapping[str, Any]],
    vifs: Mapping[str, Mapping[str, Any]],
    vhds: Mapping[str, str],
    differencing: Mapping[str, bool],
    disks: Mapping[str, Mapping[str, Any]],
    size: int,
) -> dict[str, Any]:
    """The metadata of one backup (keys of ``vbds``/``vdis``/``vhds`` are the snapshot refs)."""
    return {
        "version": VERSION,
        "jobId": job_id,
        "scheduleId": schedule_id,
        "mode": "delta",
        "timestamp": int(parse_timestamp(timestamp).timestamp() * 1000),
        "vm": record_json(vm),
        "vmSnapshot": record_json(vm_snapshot),
        "size": size,
        "tags": [],
        "vbds": records_json(vbds),
        "vdis": records_json(vdis),
        "vifs": records_json(vifs),
        "vhds": dict(vhds),
        "isVhdDifferencing": dict(differencing),
        "vtpms": [],
        "xoweb": {"version": XOWEB_VERSION, "jobMode": job_mode, "disks": jsonable(disks)},
    }


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise MetadataError(f"{where}: field '{name}' is missing")
    value = data[name]
    if not isinstance(value, kind):
        expected = (
            kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        )
        raise MetadataError(f"{where}: field '{name}' should be a {expected}, not {value!r:.60}")
    return value


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def entry_from_metadata(path: str, data: Any) -> BackupEntry:
    """The ``BackupEntry`` of the metadata ``data`` read from ``path`` (relative to the root).

    Steps: check the fields XO's restore needs; take the VM and the time from the file name
    and ``timestamp``; list the disks from ``vhds`` with their ``vdis`` records.
    """
    where = path
    if not isinstance(data, Mapping):
        raise MetadataError(f"{where}: not a JSON object")
    version = _field(data, "version", str, where)
    if not version.startswith("2."):
        raise MetadataError(f"{where}: metadata version {version!r} is not 2.x")
    parts = path.split("/")
    if len(parts) != 3 or parts[0] != BACKUP_ROOT or not parts[2].endswith(".json"):
        raise MetadataError(f"{where}: not at {BACKUP_ROOT}/<vm uuid>/<timestamp>.json")
    timestamp = parts[2].removesuffix(".json")
    if not is_timestamp(timestamp):
        raise MetadataError(f"{where}: file name is not a backup timestamp")
    vm = _field(data, "vm", Mapping, where)
    mode = _field(data, "mode", str, where)
    job_id = _field(data, "jobId", str, where)
    schedule_id = data.get("scheduleId") or ""
    if mode != "delta":
        raise MetadataError(
            f"{where}: mode {mode!r} (an XVA backup) is not read by xoweb; only VHD backups are"
        )
    vhds = _field(data, "vhds", Mapping, where)
    vdis = _field(data, "vdis", Mapping, where)
    differencing = data.get("isVhdDifferencing") or {}
    ours = data.get("xoweb") if isinstance(data.get("xoweb"), Mapping) else {}
    our_disks = ours.get("disks") if isinstance(ours.get("disks"), Mapping) else {}
    disks = []
    for ref, relative in vhds.items():
        record = vdis.get(ref)
        if not isinstance(record, Mapping):
            raise MetadataError(f"{where}: vhds names {ref} but vdis has no record for it")
        if not isinstance(relative, str) or relative.startswith("/") or ".." in relative:
            raise MetadataError(f"{where}: vhds[{ref}] is not a path inside the VM folder")
        extra = our_disks.get(ref) if isinstance(our_disks.get(ref), Mapping) else {}
        source = record.get("$snapshot_of$uuid") or record.get("uuid") or ""
        disks.append(
            BackupDisk(
                vdi_uuid=str(source),
                vdi_name=str(record.get("name_label", "")),
                path=f"{BACKUP_ROOT}/{parts[1]}/{relative.removeprefix('./')}",
                differencing=bool(differencing.get(ref, False)),
                size=_int(record.get("virtual_size")),
                sha256=str(extra.get("sha256", "")),
                snapshot_vdi_uuid=str(record.get("uuid", "")),
                vdi_ref=str(ref),
                mode=str(extra.get("mode", "")),
                reason=str(extra.get("reason", "")),
            )
        )
    return BackupEntry(
        path=path,
        vm_uuid=parts[1],
        vm_name=str(vm.get("name_label", "")),
        timestamp=timestamp,
        datetime=parse_timestamp(timestamp),
        job_id=job_id,
        schedule_id=str(schedule_id),
        mode=str(ours.get("jobMode") or "delta"),
        size=_int(data.get("size")),
        disks=tuple(disks),
        written_by="xoweb" if ours else "xo",
    )
