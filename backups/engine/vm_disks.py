"""Which disks of a VM are backed up, read from the pool (docs/backup-engine.md §4).

A disk is a VBD of type ``Disk`` that is not empty, whose VDI is *managed* (hidden base copies
of VHD chains are ``managed=false`` and never a disk) and not on an ISO SR. A disk whose name
contains ``[NOBAK]`` (anywhere, as XO reads it) is left out: not exported, and for a halted VM
not even snapshotted. Only the records needed are fetched, never whole tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pools.xapi import NULL_REF, XapiClient, XapiFailure

from .errors import EngineError

NOBAK = "[NOBAK]"


@dataclass(frozen=True)
class VmDisk:
    """One disk of the live VM."""

    vbd_ref: str
    vdi_ref: str
    vbd: dict[str, Any]
    vdi: dict[str, Any]

    @property
    def uuid(self) -> str:
        return self.vdi["uuid"]

    @property
    def name(self) -> str:
        return self.vdi.get("name_label", "")

    @property
    def userdevice(self) -> str:
        return str(self.vbd.get("userdevice", ""))

    @property
    def virtual_size(self) -> int:
        return int(self.vdi.get("virtual_size", 0))

    @property
    def nobak(self) -> bool:
        return NOBAK in self.name

    @property
    def label(self) -> str:
        """How a person names it: its device position and name."""
        return f"disk {self.userdevice} '{self.name}'"


def read_vm(client: XapiClient, vm_uuid: str) -> tuple[str, dict[str, Any]]:
    """(ref, record) of the VM; a message naming the uuid if it is not a VM one can back up."""
    try:
        ref = client.call("VM.get_by_uuid", vm_uuid)
    except XapiFailure as error:
        if error.code == "UUID_INVALID":
            raise EngineError(f"no VM with uuid {vm_uuid} on the pool {client.url}") from None
        raise
    record = client.call("VM.get_record", ref)
    if record.get("is_a_snapshot") or record.get("is_a_template"):
        raise EngineError(f"{vm_uuid} is a snapshot or a template, not a VM to back up")
    if record.get("is_control_domain"):
        raise EngineError(f"{vm_uuid} is a control domain, not a VM to back up")
    return ref, record


def vm_disks(client: XapiClient, vm: dict[str, Any]) -> list[VmDisk]:
    """The VM's disks in device order ([NOBAK] ones included: ``VmDisk.nobak`` tells)."""
    disks = []
    iso_srs: dict[str, bool] = {}
    for vbd_ref in vm.get("VBDs", []):
        vbd = client.call("VBD.get_record", vbd_ref)
        if vbd.get("type") != "Disk" or vbd.get("empty") or vbd.get("VDI") in ("", NULL_REF):
            continue
        vdi_ref = vbd["VDI"]
        vdi = client.call("VDI.get_record", vdi_ref)
        if not vdi.get("managed", True) or vdi.get("is_a_snapshot"):
            continue
        sr = vdi.get("SR", NULL_REF)
        if sr not in iso_srs:
            iso_srs[sr] = client.call("SR.get_content_type", sr) == "iso"
        if iso_srs[sr]:
            continue
        disks.append(VmDisk(vbd_ref, vdi_ref, vbd, vdi))
    return sorted(disks, key=lambda disk: _device_order(disk.userdevice))


def _device_order(userdevice: str) -> tuple[int, str]:
    return (int(userdevice), "") if userdevice.isdigit() else (1 << 30, userdevice)
