"""The pool a fresh data directory starts with, named from the command-line options.

Hosts with a control domain each, a shared NFS SR, a local SR per host, an ISO SR with the guest
tools ISO, one network; N VMs that mix Running and Halted, some with several disks, some disks
named `[NOBAK]`, each disk with partly written content (seeded blocks, see disks.py). Everything
is deterministic for a given set of options, so tests can rely on the shape.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from . import schema
from .db import Database
from .devices import device_name, disk_vbd
from .disks import SECTOR, BlockStore, block_count
from .macs import MAC_SEED

GIB = 1024**3

# Back-links (SR.VDIs, network.VIFs, …) gathered during the build and written once at the end:
# appending to a 10,000-item list record by record would be quadratic.
Links = defaultdict[tuple[str, str, str], list[str]]


@dataclass(frozen=True)
class SeedOptions:
    vms: int
    hosts: int
    disk_size: int
    sr_size: int | None = None  # physical size of the shared and local SRs (default: big)

    @property
    def pool_name(self) -> str:
        return f"xapisim-{self.hosts}h-{self.vms}vm"


def disk_count(index: int) -> int:
    """1 disk for most VMs, 2 for every third, 3 for every fifth (so some have several)."""
    return 1 + (index % 3 == 0) + (index % 5 == 0)


def is_nobak(index: int, position: int) -> bool:
    return position == 2 or (position == 1 and index % 7 == 3)


def seeded_runs(size: int, index: int) -> dict[int, tuple[int, int]]:
    """Which sectors of which blocks hold generated data: the first 64 KiB, part of a middle
    block and the first 4 KiB of the last block."""
    blocks = block_count(size)
    sectors_per_block = 4096
    runs = {0: (0, 128)}
    if blocks > 2:
        middle = blocks // 2
        start = (index * 97) % (sectors_per_block - 512)
        runs[middle] = (start, 256 + index % 256)
    last_sectors = (size - (blocks - 1) * 2 * 1024 * 1024) // SECTOR
    if blocks > 1:
        runs[blocks - 1] = (0, min(8, last_sectors))
    return runs


def build(db: Database, store: BlockStore, options: SeedOptions, addresses: list[str]) -> list[str]:
    """Create the pool; returns the host refs in port order (the first is the coordinator)."""
    new = schema.new_record
    hosts = []
    for number in range(options.hosts):
        host = db.create(
            "host",
            new(
                "host",
                name_label=f"xapisim-host-{number}",
                hostname=f"xapisim-host-{number}",
                address=addresses[number],
                software_version={
                    "product_brand": "XCP-ng",
                    "product_version": "8.3.0",
                    "platform_name": "XCP",
                    "xapi": "25.6",
                    "xen": "4.17.5",
                    "hostname": f"xapisim-host-{number}",
                },
                memory_overhead=0,
            ),
        )
        hosts.append(host)
    master = hosts[0]

    shared = db.create(
        "SR",
        new(
            "SR",
            name_label="Shared storage",
            name_description="NFS SR",
            type="nfs",
            shared=True,
            physical_size=options.sr_size or 4096 * GIB,
            content_type="user",
        ),
    )
    iso = db.create(
        "SR",
        new(
            "SR",
            name_label="XCP-ng Tools",
            type="iso",
            content_type="iso",
            shared=True,
            is_tools_sr=True,
            physical_size=1 * GIB,
        ),
    )
    local: list[str] = []
    for number, host in enumerate(hosts):
        local.append(
            db.create(
                "SR",
                new(
                    "SR",
                    name_label=f"Local storage on xapisim-host-{number}",
                    type="ext",
                    content_type="user",
                    shared=False,
                    physical_size=options.sr_size or 512 * GIB,
                ),
            )
        )
        for sr in (shared, iso, local[-1]):
            pbd = db.create("PBD", new("PBD", host=host, SR=sr, currently_attached=True))
            db.add_to_set("host", host, "PBDs", pbd)
            db.add_to_set("SR", sr, "PBDs", pbd)
    network = db.create(
        "network",
        new("network", name_label="Pool-wide network associated with eth0", bridge="xenbr0"),
    )
    links: Links = defaultdict(list)
    tools_iso = _vdi(
        db, store, links, iso, "guest-tools.iso", 64 * 1024 * 1024, kind="user", seed=None
    )
    db.update("VDI", tools_iso, is_tools_iso=True, read_only=True)

    db.create(
        "pool",
        new(
            "pool",
            name_label=options.pool_name,
            master=master,
            default_SR=shared,
            suspend_image_SR=shared,
            crash_dump_SR=shared,
        ),
    )
    for number, host in enumerate(hosts):
        dom0 = db.create(
            "VM",
            new(
                "VM",
                name_label=f"Control domain on host: xapisim-host-{number}",
                is_control_domain=True,
                power_state="Running",
                resident_on=host,
                domid=0,
                memory_static_max=4 * GIB,
            ),
        )
        db.update("host", host, control_domain=dom0, resident_VMs=[dom0])

    for index in range(options.vms):
        _vm(db, store, links, options, index, hosts, shared, local, network, tools_iso)
    for (cls, ref, field), items in links.items():
        db.update(cls, ref, **{field: db.get(cls, ref)[field] + items})
    return hosts


def _vdi(
    db: Database,
    store: BlockStore,
    links: Links,
    sr: str,
    label: str,
    size: int,
    kind: str,
    seed: int | None,
) -> str:
    # File-based SRs (ext, nfs) write no vdi_type into sm_config (docs/xapi.md §8.5).
    record = schema.new_record("VDI", name_label=label, SR=sr, virtual_size=size, type=kind)
    record["location"] = record["uuid"]
    if seed is None:
        store.create(record["uuid"], size, sr)
    else:
        store.seed(record["uuid"], size, seed, seeded_runs(size, seed), sr)
    record["physical_utilisation"] = store.allocated_bytes(record["uuid"])
    ref = db.create("VDI", record)
    links["SR", sr, "VDIs"].append(ref)
    return ref


def _vm(
    db: Database,
    store: BlockStore,
    links: Links,
    options: SeedOptions,
    index: int,
    hosts: list[str],
    shared: str,
    local: list[str],
    network: str,
    tools_iso: str,
) -> None:
    running = index % 3 != 2
    host = hosts[index % len(hosts)]
    name = f"vm-{index:05d}"
    memory = (4 if index % 2 else 1) * GIB
    vm = db.create(
        "VM",
        schema.new_record(
            "VM",
            name_label=name,
            name_description=f"Simulated VM {index}",
            power_state="Running" if running else "Halted",
            resident_on=host if running else schema.NULL,
            domid=index + 1 if running else -1,
            memory_static_max=memory,
            memory_dynamic_max=memory,
            memory_dynamic_min=memory,
            memory_static_min=memory // 2,
            memory_target=memory if running else 0,
            VCPUs_max=2,
            VCPUs_at_startup=2,
            allowed_operations=["snapshot", "checkpoint", "clean_shutdown", "hard_shutdown"]
            if running
            else ["start", "destroy", "snapshot", "export", "clone", "copy"],
            other_config={"xapisim:index": str(index), MAC_SEED: schema.new_uuid()},
        ),
    )
    if running:
        links["host", host, "resident_VMs"].append(vm)
    # Every fourth VM keeps its disks on its host's local SR (export from elsewhere: 302).
    sr = local[index % len(hosts)] if index % 4 == 3 and len(hosts) > 1 else shared
    vbds = []
    for position in range(disk_count(index)):
        size = options.disk_size if position == 0 else max(options.disk_size // 2, 2 * 1024 * 1024)
        label = f"{name} disk {position}" + (" [NOBAK]" if is_nobak(index, position) else "")
        vdi = _vdi(
            db,
            store,
            links,
            sr,
            label,
            size,
            kind="system" if position == 0 else "user",
            seed=index * 8 + position,
        )
        vbd = db.create("VBD", disk_vbd(vm, vdi, position, attached=running))
        db.tables["VDI"][vdi]["VBDs"].append(vbd)  # fresh record, not yet serialised
        vbds.append(vbd)
    cd_vdi = tools_iso if index % 2 == 0 else schema.NULL
    cd = db.create(
        "VBD",
        schema.new_record(
            "VBD",
            VM=vm,
            VDI=cd_vdi,
            userdevice="3",
            mode="RO",
            type="CD",
            empty=cd_vdi == schema.NULL,
            currently_attached=running and cd_vdi != schema.NULL,
            device=device_name(3) if running else "",
        ),
    )
    if cd_vdi != schema.NULL:
        links["VDI", cd_vdi, "VBDs"].append(cd)
    vif = db.create(
        "VIF",
        schema.new_record(
            "VIF",
            VM=vm,
            network=network,
            device="0",
            currently_attached=running,
            MAC="c2:"
            + ":".join(f"{(index >> shift) & 255:02x}" for shift in (24, 16, 8, 0))
            + ":00",
        ),
    )
    links["network", network, "VIFs"].append(vif)
    db.tables["VM"][vm].update(VBDs=[*vbds, cd], VIFs=[vif])  # fresh record, not yet serialised
