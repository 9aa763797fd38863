"""The storage manager: VDI records kept in step with the block store's VHD-like chains, as a
file-based SMAPIv1 SR does it (docs/xapi.md §12).

- Each inner node of a chain is a hidden **base copy** VDI record (`managed=false`,
  `read_only=true`, uuid = the node's, `sm_config["vhd-parent"]` = its parent's uuid); each
  leaf is a VDI people see, with `vhd-parent` naming its parent node.
- A snapshot or clone makes the new base copy record; a destroy removes the leaf and leaves the
  base copies; `collect` (the SM's GC: `sim.coalesce`, or the `Coalescer` thread a while after
  a destroy) deletes or merges them and updates the records.
- Space: `SR.physical_utilisation` is what the SR's nodes take, `SR.virtual_allocation` the
  virtual sizes of its visible VDIs; what does not fit is SR_FULL [requested, maximum].
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from . import schema
from .devices import destroy_vbd
from .disks import MAX_CHAIN, ChainTooLong, SrFull, node_bytes
from .errors import XapiError
from .wire import now

if TYPE_CHECKING:
    from .pool import Simulator

# VDI fields a snapshot or clone gets from its source (xapi_vdi.ml snapshot_and_clone).
COPIED = (
    "name_label",
    "name_description",
    "type",
    "sharable",
    "other_config",
    "xenstore_data",
    "on_boot",
    "allow_caching",
    "tags",
)
BASE_COPY_LABEL = "base copy"


@contextmanager
def space_errors() -> Iterator[None]:
    """Turn the block store's refusals into XAPI's errors."""
    try:
        yield
    except SrFull as full:
        raise XapiError("SR_FULL", full.requested, full.maximum) from full
    except ChainTooLong as long:
        raise XapiError(
            "SR_BACKEND_FAILURE_109", "", "The snapshot chain is too long", ""
        ) from long


def _vhd_parent(sim: Simulator, node_uuid: str) -> dict[str, str]:
    parent = sim.store.nodes[node_uuid].parent
    return {"vhd-parent": parent} if parent else {}


def _set_vhd_parent(sim: Simulator, vdi: str, node_uuid: str) -> None:
    """Point a VDI record's `vhd-parent` at its node's parent, keeping its other keys."""
    record = sim.db.get("VDI", vdi)
    config = {k: v for k, v in record["sm_config"].items() if k != "vhd-parent"}
    config.update(_vhd_parent(sim, node_uuid))
    if config != record["sm_config"]:
        sim.db.update("VDI", vdi, sm_config=config)


def new_vdi(sim: Simulator, fields: dict[str, Any]) -> str:
    """Create a VDI record and its empty disk, linked into its SR (space: its metadata)."""
    db = sim.db
    with db.lock:
        record = schema.new_record("VDI", **fields)
        record["location"] = record["uuid"]
        db.get("SR", record["SR"])
        with space_errors():
            node = sim.store.create(record["uuid"], record["virtual_size"], record["SR"])
        record["physical_utilisation"] = node_bytes(node)
        ref = db.create("VDI", record)
        db.add_to_set("SR", record["SR"], "VDIs", ref)
        refresh_sr(sim, record["SR"])
        return ref


def _base_copy(sim: Simulator, node_uuid: str, source: dict[str, Any]) -> str:
    """The hidden VDI record of an inner node (FileSR.py `_snapshot`)."""
    node = sim.store.nodes[node_uuid]
    record = schema.new_record(
        "VDI",
        name_label=BASE_COPY_LABEL,
        SR=source["SR"],
        virtual_size=node.size,
        physical_utilisation=node_bytes(node),
        type="user",
        read_only=True,
        managed=False,
        location=node_uuid,
        sm_config=_vhd_parent(sim, node_uuid),
        allowed_operations=[],
    )
    record["uuid"] = node_uuid
    ref = sim.db.create("VDI", record)
    sim.db.add_to_set("SR", source["SR"], "VDIs", ref)
    return ref


def snapshot_vdi(sim: Simulator, vdi: str, *, clone: bool = False, when: Any = None) -> str:
    """`VDI.snapshot` / `VDI.clone` on a VHD SR (docs/xapi.md §12.2): a new leaf for the disk
    and one for the copy under a new base copy; the copy is writable, with its own `sm_config`.
    """
    db = sim.db
    with db.lock:
        source = db.get("VDI", vdi)
        if not source["managed"]:
            raise XapiError("VDI_NOT_MANAGED", vdi)
        if not clone and source["sharable"]:
            raise XapiError("VDI_IS_SHARABLE", vdi)
        if source["on_boot"] == "reset":
            raise XapiError("VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION")
        record = schema.new_record("VDI", **{name: _copy(source[name]) for name in COPIED})
        record.update(SR=source["SR"], virtual_size=source["virtual_size"])
        record["location"] = record["uuid"]
        with space_errors():
            base = sim.store.snapshot(source["uuid"], record["uuid"])
        leaf = sim.store.leaf_of[record["uuid"]]
        record.update(
            sm_config=_vhd_parent(sim, leaf),
            physical_utilisation=node_bytes(sim.store.nodes[leaf]),
        )
        if not clone:
            record.update(is_a_snapshot=True, snapshot_of=vdi, snapshot_time=when or now())
        ref = db.create("VDI", record)
        db.add_to_set("SR", record["SR"], "VDIs", ref)
        if not clone:
            db.add_to_set("VDI", vdi, "snapshots", ref)
        if base is not None:
            _base_copy(sim, base, source)
        source_leaf = sim.store.leaf_of[source["uuid"]]
        _set_vhd_parent(sim, vdi, source_leaf)
        db.update("VDI", vdi, physical_utilisation=node_bytes(sim.store.nodes[source_leaf]))
        sim.store_dirty = True
        refresh_sr(sim, record["SR"])
        return ref


def _copy(value: Any) -> Any:
    return value.copy() if isinstance(value, dict | list) else value


def destroy_vdi(sim: Simulator, vdi: str) -> None:
    """`VDI.destroy` (xapi_vdi.ml): refused while a VBD is attached or on a base copy; removes
    the record, its VBDs and its leaf; base copies stay for the GC, which is kicked."""
    db = sim.db
    with db.lock:
        record = db.get("VDI", vdi)
        if any(db.tables["VBD"][vbd]["currently_attached"] for vbd in record["VBDs"]):
            raise XapiError("VDI_IN_USE", vdi, "destroy")
        if db.get("SR", record["SR"])["is_tools_sr"]:
            raise XapiError("SR_OPERATION_NOT_SUPPORTED", record["SR"])
        if not record["managed"]:
            raise XapiError("VDI_NOT_MANAGED", vdi)
        forget_vdi(sim, vdi)
    sim.coalescer.kick()


def forget_vdi(sim: Simulator, vdi: str) -> None:
    """Remove a VDI record, its VBDs and its leaf without any check (the caller checked)."""
    db = sim.db
    with db.lock:
        record = db.get("VDI", vdi)
        for vbd in list(record["VBDs"]):
            if db.exists("VBD", vbd):
                destroy_vbd(db, vbd)
        if record["snapshot_of"] != schema.NULL:
            db.remove_from_set("VDI", record["snapshot_of"], "snapshots", vdi)
        for vm, vm_record in db.tables["VM"].items():
            if vm_record["suspend_VDI"] == vdi:
                db.update("VM", vm, suspend_VDI=schema.NULL)
        db.remove_from_set("SR", record["SR"], "VDIs", vdi)
        db.delete("VDI", vdi)
        sim.store.destroy(record["uuid"])
        sim.store_dirty = True
        refresh_sr(sim, record["SR"])


def after_write(sim: Simulator, vdi: str) -> None:
    """Refresh what a write changed: the VDI's and its SR's utilisation."""
    db = sim.db
    with db.lock:
        if not db.exists("VDI", vdi):
            return
        record = db.get("VDI", vdi)
        used = sim.store.allocated_bytes(record["uuid"])
        if used != record["physical_utilisation"]:
            db.update("VDI", vdi, physical_utilisation=used)
        sim.store_dirty = True
        refresh_sr(sim, record["SR"])


def refresh_sr(sim: Simulator, sr: str) -> None:
    """Write the SR's `physical_utilisation` and `virtual_allocation` if they moved."""
    db = sim.db
    with db.lock:
        record = db.tables["SR"].get(sr)
        if record is None:
            return
        vdis = db.tables["VDI"]
        allocation = sum(
            vdis[v]["virtual_size"] for v in record["VDIs"] if v in vdis and vdis[v]["managed"]
        )
        used = sim.store.used.get(sr, 0)
        if (record["physical_utilisation"], record["virtual_allocation"]) != (used, allocation):
            db.update("SR", sr, physical_utilisation=used, virtual_allocation=allocation)


def set_sr_size(sim: Simulator, sr: str, size: int) -> None:
    with sim.db.lock:
        sim.db.get("SR", sr)
        sim.store.capacity[sr] = size
        sim.db.update("SR", sr, physical_size=size)


def transfer_chains(sim: Simulator) -> set[str]:
    """Nodes of the disks being exported or imported now: the GC leaves them alone."""
    nodes: set[str] = set()
    for vdi_uuid in list(sim.transfers):
        if vdi_uuid in sim.store.leaf_of:
            nodes.update(sim.store.chain(sim.store.leaf_of[vdi_uuid]))
    return nodes


def collect(sim: Simulator, sr: str | None = None) -> int:
    """Run the SM's GC now (docs/xapi.md §12.3); returns how many base copies went."""
    db = sim.db
    with db.lock:
        steps = sim.store.collect(transfer_chains(sim), sr)
        srs = set()
        for step in steps:
            gone = db.by_uuid["VDI"].get(step.node)
            if gone is not None:
                srs.add(db.tables["VDI"][gone]["SR"])
                db.remove_from_set("SR", db.tables["VDI"][gone]["SR"], "VDIs", gone)
                db.delete("VDI", gone)
        # A node a step merged into may have been merged further by a later step.
        for node in {step.into for step in steps if step.into in sim.store.nodes}:
            survivor = _record_of_node(sim, node)
            if survivor is not None:
                _set_vhd_parent(sim, survivor, node)
                db.update("VDI", survivor, physical_utilisation=node_bytes(sim.store.nodes[node]))
        for each in srs:
            refresh_sr(sim, each)
        if steps:
            sim.store_dirty = True
        return len(steps)


def _record_of_node(sim: Simulator, node_uuid: str) -> str | None:
    """The VDI record of a node: the VDI whose leaf it is, or its base copy."""
    for vdi_uuid, leaf in sim.store.leaf_of.items():
        if leaf == node_uuid:
            return sim.db.by_uuid["VDI"].get(vdi_uuid)
    return sim.db.by_uuid["VDI"].get(node_uuid)


def reconcile(sim: Simulator) -> None:
    """After loading a state or seeding: every inner node has its base copy record, every SR
    its capacity, and the SRs' space fields are current. Nodes saved by an older simulator
    get the SR of the VDIs above them."""
    db = sim.db
    store = sim.store
    with db.lock:
        for vdi_uuid, leaf in store.leaf_of.items():
            ref = db.by_uuid["VDI"].get(vdi_uuid)
            if ref is None:
                continue
            sr = db.tables["VDI"][ref]["SR"]
            for node in store.chain(leaf):
                if not store.nodes[node].sr:
                    store.nodes[node].sr = sr
        store.recount()
        for node in store.inner_nodes():
            if node not in db.by_uuid["VDI"]:
                _base_copy(sim, node, {"SR": store.nodes[node].sr})
        for sr, record in db.tables["SR"].items():
            store.capacity[sr] = record["physical_size"]
            refresh_sr(sim, sr)


def chain_depth(sim: Simulator, vdi: str) -> int:
    record = sim.db.get("VDI", vdi)
    return len(sim.store.chain(sim.store.leaf_of[record["uuid"]]))


class Coalescer(threading.Thread):
    """Runs `collect` a delay after a destroy kicked it, as the SM's GC runs in the background.
    A negative delay stops automatic runs (only `sim.coalesce` then)."""

    def __init__(self, sim: Simulator, delay: float) -> None:
        super().__init__(name="xapisim-coalesce", daemon=True)
        self.sim = sim
        self.delay = delay
        self.due: float | None = None
        self.wake = threading.Condition()
        self.stopping = False

    def kick(self) -> None:
        with self.wake:
            if self.delay < 0:
                return
            due = time.monotonic() + self.delay
            if self.due is None or due < self.due:
                self.due = due
            self.wake.notify()

    def run(self) -> None:
        while True:
            with self.wake:
                while not self.stopping and (self.due is None or self.due > time.monotonic()):
                    timeout = None if self.due is None else self.due - time.monotonic()
                    self.wake.wait(timeout)
                if self.stopping:
                    return
                self.due = None
            collect(self.sim)

    def stop(self) -> None:
        with self.wake:
            self.stopping = True
            self.wake.notify()


__all__ = [
    "MAX_CHAIN",
    "Coalescer",
    "after_write",
    "collect",
    "destroy_vdi",
    "new_vdi",
    "reconcile",
    "refresh_sr",
    "snapshot_vdi",
]
