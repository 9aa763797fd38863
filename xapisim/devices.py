"""How a VM sees its disks: the VBD that plugs a disk in at a position, the device name the guest
gets for a userdevice, `VBD.create`'s checks (docs/xapi.md §8.9), and the control-domain VBDs a
transfer plugs for its duration (docs/xapi.md §9.7). Shared by the seeded pool and the `sim.*`,
`VBD.*` and HTTP handlers so that a disk made either way looks the same."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import schema
from .errors import XapiError

if TYPE_CHECKING:
    from .db import Database

# VDI types a VBD may point at (xapi_vbd.ml create).
PLUGGABLE_TYPES = frozenset(
    {"system", "user", "ephemeral", "suspend", "crashdump", "metadata", "rrd", "pvs_cache"}
)
_DEVICE_NAME = re.compile(r"^(?:xvd|hd|sd)([a-z]+)(\d*)$")
MAX_DEVICES = 255  # allowed_VBD_devices_HVM: 0..254


def device_name(userdevice: str | int) -> str:
    """The guest's device for a userdevice: 0 is xvda, 1 xvdb, 3 (the CD drive) xvdd, 26 xvdaa."""
    number = int(userdevice) + 1
    letters = ""
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(97 + rest) + letters
    return f"xvd{letters}"


def device_number(text: str) -> tuple[int, int] | None:
    """(disk, partition) for a userdevice or device name: "1", "xvdb" and "hdb" are all disk 1
    (Device_number.of_string); None if it is neither."""
    if re.fullmatch(r"-?\d+", text):
        return int(text), 0
    match = _DEVICE_NAME.match(text)
    if match is None:
        return None
    disk = 0
    for letter in match.group(1):
        disk = disk * 26 + ord(letter) - 96
    return disk - 1, int(match.group(2) or 0)


def disk_vbd(vm: str, vdi: str, position: int, attached: bool = False) -> dict[str, Any]:
    """A fresh VBD record for `vdi` as disk `position` of `vm`, the first one bootable; when
    `attached`, plugged in with its device name."""
    return schema.new_record(
        "VBD",
        VM=vm,
        VDI=vdi,
        userdevice=str(position),
        bootable=position == 0,
        mode="RW",
        type="Disk",
        currently_attached=attached,
        device=device_name(position) if attached else "",
        other_config={"owner": ""},
    )


def _used_devices(db: Database, vm: str) -> set[tuple[int, int]]:
    used = set()
    for vbd in db.get("VM", vm)["VBDs"]:
        record = db.tables["VBD"][vbd]
        for text in (record["device"], record["userdevice"]):
            number = device_number(text)
            if number is not None:
                used.add(number)
    return used


def checked_vbd(db: Database, fields: dict[str, Any]) -> dict[str, Any]:
    """A VBD record from `VBD.create` fields after XAPI's checks, in XAPI's order
    (`xapi_vbd.ml` create, docs/xapi.md §8.9); the caller holds the database lock."""
    vm = fields["VM"]
    vdi = fields["VDI"]
    power_state = db.get("VM", vm)["power_state"]
    empty = bool(fields["empty"])
    if not empty:
        vdi_type = db.get("VDI", vdi)["type"]
        if vdi_type not in PLUGGABLE_TYPES:
            raise XapiError("VDI_INCOMPATIBLE_TYPE", vdi, vdi_type)
    if fields["type"] == "CD" and fields["mode"] != "RO":
        raise XapiError("VBD_CDS_MUST_BE_READONLY")
    if fields["type"] != "CD" and empty:
        raise XapiError("VBD_NOT_REMOVABLE_MEDIA", "in constructor")
    if fields["mode"] == "RW" and db.get("VDI", vdi)["read_only"]:
        raise XapiError("VDI_READONLY", vdi)
    userdevice = str(fields["userdevice"])
    used = _used_devices(db, vm)
    if userdevice == "autodetect":
        free = [n for n in range(MAX_DEVICES) if (n, 0) not in used]
        if not free:
            raise XapiError("INVALID_DEVICE", userdevice)
        userdevice = str(free[0])
    number = device_number(userdevice)
    if number is None:
        raise XapiError("INVALID_DEVICE", userdevice)
    if number in used:
        raise XapiError("DEVICE_ALREADY_EXISTS", userdevice)
    suspended = power_state == "Suspended"
    record = schema.new_record("VBD", **fields)
    record.update(
        userdevice=userdevice,
        device=fields.get("device", "") if suspended else "",
        currently_attached=bool(fields.get("currently_attached", False)) and suspended,
    )
    return record


def link_vbd(db: Database, record: dict[str, Any]) -> str:
    """Create the VBD row and link it from its VM and VDI."""
    ref = db.create("VBD", record)
    db.add_to_set("VM", record["VM"], "VBDs", ref)
    if record["VDI"] != schema.NULL:
        db.add_to_set("VDI", record["VDI"], "VBDs", ref)
    return ref


def destroy_vbd(db: Database, vbd: str) -> None:
    """Remove a VBD row and its links, attached or not (VM.destroy's way)."""
    with db.lock:
        record = db.get("VBD", vbd)
        db.remove_from_set("VM", record["VM"], "VBDs", vbd)
        if record["VDI"] != schema.NULL:
            db.remove_from_set("VDI", record["VDI"], "VBDs", vbd)
        db.delete("VBD", vbd)


def plug_into_dom0(db: Database, dom0: str, vdi: str, mode: str) -> str:
    """What a transfer does first (`with_block_attached_device`): VBD.create on the control
    domain (the checks apply: RW on a read-only VDI is VDI_READONLY), then plug it."""
    with db.lock:
        record = checked_vbd(
            db,
            {
                "VM": dom0,
                "VDI": vdi,
                "userdevice": "autodetect",
                "bootable": False,
                "mode": mode,
                "type": "Disk",
                "empty": False,
                "unpluggable": True,
                "other_config": {},
                "qos_algorithm_type": "",
                "qos_algorithm_params": {},
            },
        )
        vbd = link_vbd(db, record)
        db.update("VBD", vbd, currently_attached=True, device=device_name(record["userdevice"]))
        return vbd


def unplug_from_dom0(db: Database, vbd: str) -> None:
    """Unplug and destroy a transfer's VBD (whatever happened to the transfer)."""
    with db.lock:
        if db.exists("VBD", vbd):
            db.update("VBD", vbd, currently_attached=False)
            destroy_vbd(db, vbd)
