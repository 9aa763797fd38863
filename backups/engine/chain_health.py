"""XO's VDI chain protection: no snapshot while the SR has not coalesced (docs/backup-engine.md §4).

On a VHD SR each snapshot adds a node to the disk's chain; the storage manager later coalesces
a hidden *base copy* (``managed=false``) with its only child. A base copy that still has exactly
one child, itself hidden, has not been coalesced yet: snapshotting again would lengthen the chain
toward XAPI's limit of 30 and can fill the SR. XO's rule (``_assertHealthyVdiChain``), kept:
walk ``sm_config['vhd-parent']`` from each disk; an unmanaged node with exactly one unmanaged
child counts as uncoalesced; more than ``tolerance`` (XO's ``maxUncoalescedVdis``, 1) →
``ChainUnhealthy``, and the VM backup is *skipped*, not failed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pools.xapi import XapiClient, XapiFailure

from .errors import ChainUnhealthy
from .vm_disks import VmDisk

#: XAPI refuses a chain longer than this; a walk that goes further has a loop.
_MAX_WALK = 64


def assert_healthy_chains(
    client: XapiClient, disks: Sequence[VmDisk], *, tolerance: int = 1
) -> None:
    """Raise ``ChainUnhealthy`` naming the disk whose chain waits for a coalesce."""
    by_uuid: dict[str, dict[str, Any]] = {}
    children: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for disk in disks:
        budget = tolerance
        record = disk.vdi
        for _step in range(_MAX_WALK):
            if not record.get("managed", True):
                sr = record.get("SR", "")
                if sr not in children:
                    children[sr] = _children_by_parent(client, sr, by_uuid)
                kids = children[sr].get(record["uuid"], [])
                if len(kids) == 1 and not kids[0].get("managed", True):
                    budget -= 1
                    if budget < 0:
                        raise ChainUnhealthy(
                            f"unhealthy VDI chain: {disk.label} has a base copy "
                            f"({record['uuid']}) the SR has not coalesced yet; the backup is "
                            "skipped to protect the chain and runs again once the SR has "
                            "coalesced (XO's VDI chain protection)"
                        )
            parent = (record.get("sm_config") or {}).get("vhd-parent")
            if not parent:
                break
            record = by_uuid.get(parent) or _record_by_uuid(client, parent, by_uuid)
            if record is None:
                break


def _record_by_uuid(
    client: XapiClient, uuid: str, cache: dict[str, dict[str, Any]]
) -> dict[str, Any] | None:
    try:
        ref = client.call("VDI.get_by_uuid", uuid)
    except XapiFailure as error:
        if error.code == "UUID_INVALID":
            return None  # coalesced away meanwhile
        raise
    record = client.call("VDI.get_record", ref)
    cache[uuid] = record
    return record


def _children_by_parent(
    client: XapiClient, sr: str, cache: dict[str, dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    records = client.call("VDI.get_all_records_where", f'field "SR" = "{sr}"')
    for record in records.values():
        cache[record["uuid"]] = record
        parent = (record.get("sm_config") or {}).get("vhd-parent")
        if parent:
            grouped[parent].append(record)
    return grouped
