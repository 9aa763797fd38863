"""Xen Orchestra's remote layout (docs/remote-format.md §1), as pure functions of names.

::

    <remote>/xo-vm-backups/<vm uuid>/<ts>.json                           a backup (commit point)
    <remote>/xo-vm-backups/<vm uuid>/vdis/<job id>/<vdi uuid>/<ts>.vhd   a disk of it
    <remote>/xo-vm-backups/<vm uuid>.lock/                               the VM folder's lock
    .<name>.<random>.partial                                             a file being written

``<ts>`` is UTC ``%Y%m%dT%H%M%SZ``; ``<vdi uuid>`` is the *source* disk's (the live VDI), so
a disk's chain stays in one folder whatever its snapshots are called. Paths handed around
are relative to the remote's root, with ``/``.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

BACKUP_ROOT = "xo-vm-backups"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_TIMESTAMP = re.compile(r"^\d{8}T\d{6}Z$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TEMP_SUFFIX = ".partial"


def format_timestamp(moment: float | datetime) -> str:
    """The ``<ts>`` of a backup taken at ``moment`` (epoch seconds or an aware datetime)."""
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, tz=UTC)
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """The aware UTC datetime of a ``<ts>``; ValueError naming the text otherwise."""
    if not _TIMESTAMP.match(text):
        raise ValueError(f"{text!r} is not a backup timestamp (expected YYYYMMDDTHHMMSSZ)")
    return datetime.strptime(text, TIMESTAMP_FORMAT).replace(tzinfo=UTC)


def is_timestamp(text: str) -> bool:
    return bool(_TIMESTAMP.match(text))


def is_uuid(text: str) -> bool:
    return bool(_UUID.match(text))


def next_timestamp(moment: float, taken: list[str]) -> str:
    """The ``<ts>`` for a backup starting at ``moment``: later than every name in ``taken``
    (one per second at most; XO asserts that a child's name sorts after its parent's)."""
    candidate = format_timestamp(moment)
    latest = max((name for name in taken if is_timestamp(name)), default="")
    if candidate > latest:
        return candidate
    return format_timestamp(parse_timestamp(latest).timestamp() + 1)


def vm_folder(vm_uuid: str) -> str:
    return f"{BACKUP_ROOT}/{vm_uuid}"


def metadata_path(vm_uuid: str, timestamp: str) -> str:
    return f"{vm_folder(vm_uuid)}/{timestamp}.json"


def disk_folder_in_vm(job_id: str, vdi_uuid: str) -> str:
    """The disk's chain folder relative to the VM folder (what XO's ``vhds`` values start with)."""
    return f"vdis/{job_id}/{vdi_uuid}"


def vhd_in_vm(job_id: str, vdi_uuid: str, timestamp: str) -> str:
    """A disk file relative to the VM folder: the value of the metadata's ``vhds`` map."""
    return f"{disk_folder_in_vm(job_id, vdi_uuid)}/{timestamp}.vhd"


def vhd_path(vm_uuid: str, job_id: str, vdi_uuid: str, timestamp: str) -> str:
    """A disk file relative to the remote's root."""
    return f"{vm_folder(vm_uuid)}/{vhd_in_vm(job_id, vdi_uuid, timestamp)}"


def lock_path(vm_uuid: str) -> str:
    """XO's lock of a VM folder is a sibling directory ``<vm uuid>.lock`` (proper-lockfile)."""
    return f"{vm_folder(vm_uuid)}.lock"


def temporary_name(name: str) -> str:
    """A dot-prefixed name in the same folder: invisible to listings (ours and XO's), removed by
    a clean pass, and never mistaken for a committed file."""
    return f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def split_vm_path(relpath: str) -> tuple[str, str]:
    """(vm uuid, name) of ``xo-vm-backups/<vm>/<name>``; ValueError otherwise."""
    parts = relpath.strip("/").split("/")
    if len(parts) != 3 or parts[0] != BACKUP_ROOT or not is_uuid(parts[1]):
        raise ValueError(f"{relpath!r} is not a backup path (expected {BACKUP_ROOT}/<vm>/<file>)")
    return parts[1], parts[2]
