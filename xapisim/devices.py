"""How a VM sees its disks: the VBD that plugs a disk in at a position, and the device name the
guest gets for a userdevice. Shared by the seeded pool and the `sim.*` and `VBD.*` methods so
that a disk made either way looks the same."""

from __future__ import annotations

from typing import Any

from . import schema


def device_name(userdevice: str | int) -> str:
    """The guest's device for a userdevice: 0 is xvda, 1 xvdb, 3 (the CD drive) xvdd."""
    return f"xvd{chr(97 + int(userdevice))}"


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
