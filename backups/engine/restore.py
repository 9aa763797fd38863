"""Restores, exact (docs/backup-engine.md §7).

* **disk → SR**: ``VDI.create`` with every field XAPI requires, then ``PUT /import_raw_vdi``
  of one synthetic full VHD built from the chain and streamed block by block (its exact length
  is known before the first byte; no temporary full file). A failure destroys the new VDI.
* **disk → file**: the chain's raw content (``raw``) or the synthetic full VHD (``vhd``),
  written atomically (temporary name, fsync, rename, fsync of the folder).
* **whole VM → new VM**: ``VM.create`` from the metadata's VM record (XO's field set), named
  ``<name> (restored <backup date>)`` and tagged ``restored from backup``, each disk restored
  as above and plugged with ``VBD.create``, each VIF on the same network (by uuid, then by
  name; a missing network is skipped with a warning). A failure destroys everything created.

The SHA-256 of a raw restore is of the disk's content, so it compares with the pool's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from backups import vhd
from pools.xapi import NULL_REF, XapiClient, XapiError, XapiFailure

from . import tags
from .errors import RemoteError, RestoreError
from .progress import NullProgress, Progress
from .readahead import read_ahead
from .remote import RemoteAdapter
from .snapshots import destroy_vdis
from .values import BackupDisk, BackupEntry, FileRestore

KnownBad = Callable[[str, str], bool]

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


def _find(remote: RemoteAdapter, backup: str, vdi_uuid: str) -> tuple[BackupEntry, BackupDisk]:
    try:
        entry = remote.backup(backup)
    except (RemoteError, OSError) as error:
        raise RestoreError(f"cannot read backup {backup} on {remote}: {error}") from None
    try:
        return entry, entry.disk(vdi_uuid)
    except KeyError as error:
        raise RestoreError(str(error.args[0])) from None


def _open_chain(
    remote: RemoteAdapter, disk: BackupDisk, known_bad: KnownBad | None = None
) -> vhd.Chain:
    """The disk's chain; ``RestoreError`` when it does not open, or when a file of it failed its
    last verification (``known_bad``): a restore never gives back bytes known to be wrong."""
    try:
        chain = vhd.open_chain(remote.path(disk.path))
    except (OSError, vhd.VhdError) as error:
        raise RestoreError(f"the disk's VHD chain on {remote} cannot be read: {error}") from None
    if known_bad is not None:
        for layer in chain.layers:
            try:
                relative = layer.path.relative_to(remote.root).as_posix()
            except ValueError:
                continue
            if known_bad(remote.remote_id, relative):
                chain.close()
                raise RestoreError(
                    f"not restored: {relative} on {remote} failed its last verification "
                    "(`manage.py backup_check` says why); restore another backup, or check "
                    "again once the remote is repaired"
                )
    return chain


def _counted(
    chunks: Iterator[bytes | memoryview], progress: Progress
) -> Iterator[bytes | memoryview]:
    for chunk in chunks:
        yield chunk
        progress.advance(len(chunk))


# -- disk → file ------------------------------------------------------------------------------


def restore_disk_to_file(
    remote: RemoteAdapter,
    backup: str,
    vdi_uuid: str,
    path: str | Path,
    *,
    fmt: str = "raw",
    progress: Progress | None = None,
    known_bad: KnownBad | None = None,
) -> FileRestore:
    """Write the disk ``vdi_uuid`` of ``backup`` to ``path`` as ``raw`` or ``vhd``."""
    progress = progress or NullProgress()
    if fmt not in ("raw", "vhd"):
        raise RestoreError(f"format {fmt!r} is not one of raw, vhd")
    path = Path(path)
    if not path.parent.is_dir():
        raise RestoreError(f"cannot restore to {path}: the folder {path.parent} does not exist")
    entry, disk = _find(remote, backup, vdi_uuid)
    target = RemoteAdapter(path.parent, name=f"restore target {path.parent}")
    with _open_chain(remote, disk, known_bad) as chain:
        if fmt == "raw":
            size, chunks = chain.size, chain.iter_raw()
        else:
            synthetic = vhd.synthetic_vhd(chain)
            size, chunks = synthetic.size, iter(synthetic)
        hasher = hashlib.sha256()
        label = f"restore {disk.vdi_name or vdi_uuid} of {entry.timestamp} to {path}"
        with progress.subtask(label, kind="restore", total=size) as step:
            try:
                with target.atomic_file(path.name) as handle:
                    for chunk in _counted(chunks, step):
                        hasher.update(chunk)
                        handle.write(chunk)
            except RemoteError as error:
                raise RestoreError(f"cannot write {path}: {error}") from None
    return FileRestore(path, size, hasher.hexdigest())


# -- disk → SR --------------------------------------------------------------------------------


def _sr(client: XapiClient, sr_uuid: str) -> tuple[str, dict[str, Any]]:
    try:
        ref = client.call("SR.get_by_uuid", sr_uuid)
    except XapiFailure as error:
        if error.code == "UUID_INVALID":
            raise RestoreError(f"no SR with uuid {sr_uuid} on the pool {client.url}") from None
        raise
    return ref, client.call("SR.get_record", ref)


def _sr_full(error: XapiFailure, sr: dict[str, Any], size: int) -> RestoreError:
    """``SR_FULL [requested, maximum]`` (docs/xapi.md §6) as a sentence."""
    detail = ""
    if len(error.params) >= 2:
        detail = f" (SR_FULL: {error.params[0]} bytes requested, {error.params[1]} at most)"
    return RestoreError(
        f"SR '{sr.get('name_label', '')}' has no room for a disk of {size} bytes{detail}: "
        "free space there or choose another SR; nothing was created"
    )


def restore_disk_to_sr(
    client: XapiClient,
    remote: RemoteAdapter,
    backup: str,
    vdi_uuid: str,
    sr_uuid: str,
    *,
    progress: Progress | None = None,
    name_label: str | None = None,
    known_bad: KnownBad | None = None,
) -> str:
    """A new VDI on ``sr_uuid`` with the disk's content; returns its uuid."""
    progress = progress or NullProgress()
    entry, disk = _find(remote, backup, vdi_uuid)
    sr_ref, sr = _sr(client, sr_uuid)
    record = remote.read_metadata(backup).get("vdis", {}).get(disk.vdi_ref, {})
    name = name_label or f"{record.get('name_label') or disk.vdi_name} (restored {_when(entry)})"
    with _open_chain(remote, disk, known_bad) as chain:
        return _import_disk(
            client,
            chain,
            sr_ref,
            sr,
            name=name,
            description=record.get("name_description", ""),
            progress=progress,
            label=f"restore {disk.vdi_name or vdi_uuid} of {entry.timestamp}",
        )[1]


def _when(entry: BackupEntry) -> str:
    return entry.datetime.strftime("%Y-%m-%d %H:%M:%S UTC")


def _import_disk(
    client: XapiClient,
    chain: vhd.Chain,
    sr_ref: str,
    sr: dict[str, Any],
    *,
    name: str,
    description: str,
    progress: Progress,
    label: str,
    other_config: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """Steps: create the VDI (every required field), stream the synthetic VHD into it, check
    the import task; on failure destroy the VDI. Returns (ref, uuid)."""
    synthetic = vhd.synthetic_vhd(chain)
    fields = {
        "name_label": name,
        "name_description": description,
        "SR": sr_ref,
        "virtual_size": str(chain.size),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": dict(other_config or {}),
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
    }
    try:
        vdi_ref = client.call("VDI.create", fields)
    except XapiFailure as error:
        if error.code == "SR_FULL":
            raise _sr_full(error, sr, chain.size) from None
        raise RestoreError(f"the pool could not create the disk: {error}") from None
    # The next blocks are read from the chain while this one is sent.
    chunks = read_ahead(synthetic, depth=2)
    try:
        with progress.subtask(label, kind="restore", total=synthetic.size) as step:
            client.import_stream(
                "/import_raw_vdi",
                {"vdi": vdi_ref, "format": "vhd"},
                _counted(chunks, step),
                synthetic.size,
                label=f"xoweb {label}",
            )
        return vdi_ref, client.call("VDI.get_uuid", vdi_ref)
    except BaseException as error:
        destroy_vdis(client, [vdi_ref])
        if isinstance(error, XapiFailure) and error.code == "SR_FULL":
            raise _sr_full(error, sr, chain.size) from None
        if isinstance(error, XapiError):
            raise RestoreError(f"the import of the disk failed: {error}") from None
        raise
    finally:
        chunks.close()


# -- whole VM ---------------------------------------------------------------------------------


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
    mark: Mapping[str, str] | None = None,
    vm_tags: list[str] | None = None,
    known_bad: KnownBad | None = None,
) -> str:
    """A new VM from ``backup`` with its disks on ``sr_uuid``; returns the new VM's uuid.

    Steps: create the VM from the metadata's record; for each backed-up disk (its VBD in the
    metadata) restore the disk and plug it at the same position; recreate the VIFs on the same
    networks (unless ``networks`` is false: a restore test must not meet its original on the
    network). Everything created is destroyed if a step fails.

    ``mark``: ``other_config`` keys set on the VM and on each of its disks (a restore test finds
    its leftovers by them, even after a crash); ``vm_tags`` replace the VM's own.
    """
    progress = progress or NullProgress()
    data = remote.read_metadata(backup)
    entry = remote.backup(backup)
    sr_ref, sr = _sr(client, sr_uuid)
    vm = data.get("vm") or {}
    name = name_label or f"{vm.get('name_label', entry.vm_name)} (restored {_when(entry)})"
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
            with _open_chain(remote, disk, known_bad) as chain:
                vdi_ref, _uuid = _import_disk(
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
                        "MAC": vif.get("MAC", ""),
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
