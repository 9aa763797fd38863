"""The XAPI records a backup's metadata keeps, enriched as XO enriches them (docs/remote-format.md §2).

``vdis`` get ``$snapshot_of$uuid`` (the source disk: the folder of its chain) and ``$SR$uuid``,
and in ``other_config`` XO's ``xo:base_delta_vdi`` (the base snapshot's uuid, for a delta) and
``xo:backup:vm``; ``vifs`` get ``$network$uuid``, ``$network$name_label`` (and
``$network$VLAN`` when the pool has PIFs), so that a restore finds the network again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pools.xapi import NULL_REF, XapiClient, XapiError

from .snapshots import Snapshot

BASE_DELTA_VDI = "xo:base_delta_vdi"
XO_BACKUP_VM = "xo:backup:vm"


def vdi_records(
    client: XapiClient, snapshot: Snapshot, *, vm_uuid: str, bases: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The snapshot VDIs' records by ref; ``bases``: source uuid → base snapshot VDI uuid."""
    sr_uuids: dict[str, str] = {}
    records = {}
    for source_uuid, disk in snapshot.disks.items():
        record = dict(disk.vdi)
        sr = record.get("SR", NULL_REF)
        if sr not in sr_uuids:
            sr_uuids[sr] = client.call("SR.get_uuid", sr)
        other = dict(record.get("other_config", {}))
        other[XO_BACKUP_VM] = vm_uuid
        if source_uuid in bases:
            other[BASE_DELTA_VDI] = bases[source_uuid]
        record["other_config"] = other
        record["$snapshot_of$uuid"] = source_uuid
        record["$SR$uuid"] = sr_uuids[sr]
        records[disk.vdi_ref] = record
    return records


def vif_records(client: XapiClient, vm: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The VIFs of ``vm`` (the snapshot VM, or the live VM of a per-disk snapshot)."""
    records = {}
    for ref in vm.get("VIFs", []):
        record = dict(client.call("VIF.get_record", ref))
        network = record.get("network", NULL_REF)
        if network != NULL_REF:
            net = client.call("network.get_record", network)
            record["$network$uuid"] = net.get("uuid", "")
            record["$network$name_label"] = net.get("name_label", "")
            vlan = _vlan(client, net)
            if vlan is not None:
                record["$network$VLAN"] = vlan
        records[ref] = record
    return records


def _vlan(client: XapiClient, network: Mapping[str, Any]) -> int | None:
    pifs = network.get("PIFs") or []
    if not pifs:
        return None
    try:
        return int(client.call("PIF.get_VLAN", pifs[0]))
    except (XapiError, ValueError):
        return None
