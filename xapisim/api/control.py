"""The `sim.` namespace: simulator-only controls for tests and rehearsals (README "Control").

They take the session ref first like every XAPI call and answer in the same envelope, but they
are not XAPI: `system.listMethods` does not list them, and they work on any live host (so a
test can still drive the pool while the coordinator is down).
"""

from __future__ import annotations

import base64
import random
from typing import Any

from .. import schema, sm
from ..devices import disk_vbd, link_vbd
from ..disks import BLOCK_SIZE, SECTOR, block_count
from ..errors import XapiError
from .registry import Call, api, parse_version, version_text
from .vm import forget_vm, refresh_allowed_operations, set_running

UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str | int) -> int:
    """`64M`, `2G`, `1048576` -> bytes."""
    value = str(text).strip().upper().removesuffix("B").removesuffix("I")
    unit = value[-1] if value and value[-1] in UNITS else ""
    number = value[: len(value) - len(unit)]
    if not number.isdigit() or int(number) <= 0:
        raise ValueError(f"size {text!r} is not a positive number with an optional K/M/G/T unit")
    return int(number) * UNITS[unit]


def _vdi_uuid(call: Call, vdi: str) -> str:
    return call.db.get("VDI", vdi)["uuid"]


def _after_write(call: Call, vdi: str) -> None:
    sm.after_write(call.sim, vdi)
    call.sim.save()  # written bytes must survive a kill right after the call


@api("sim.vdi_write_random")
def vdi_write_random(call: Call, vdi: str, count: Any, seed: Any = "") -> list[int]:
    """Write random bytes into `count` distinct random blocks: in each, a random run of sectors
    (so blocks end up partly written). Returns the block indices, ascending."""
    uuid = _vdi_uuid(call, vdi)
    size = call.sim.store.size(uuid)
    blocks = block_count(size)
    rng = random.Random(str(seed)) if str(seed) else random.Random()
    chosen = sorted(rng.sample(range(blocks), min(int(count), blocks)))
    try:
        with sm.space_errors():
            for index in chosen:
                block_bytes = min(BLOCK_SIZE, size - index * BLOCK_SIZE)
                sectors = max(1, block_bytes // SECTOR)
                first = rng.randrange(sectors)
                length = rng.randint(1, sectors - first)
                call.sim.store.write(
                    uuid, index * BLOCK_SIZE + first * SECTOR, rng.randbytes(length * SECTOR)
                )
    finally:
        _after_write(call, vdi)
    return chosen


@api("sim.vdi_write")
def vdi_write(call: Call, vdi: str, offset: Any, data: Any) -> None:
    """Write bytes at a byte offset; `data` is XML-RPC base64 or a base64 string."""
    payload = data if isinstance(data, bytes) else base64.b64decode(str(data))
    try:
        with sm.space_errors():
            call.sim.store.write(_vdi_uuid(call, vdi), int(offset), payload)
    except ValueError as error:
        raise XapiError("VDI_IO_ERROR", str(error)) from error
    finally:
        _after_write(call, vdi)


@api("sim.vdi_sha256")
def vdi_sha256(call: Call, vdi: str) -> str:
    """SHA-256 of the raw virtual content (what a `format=raw` export returns)."""
    return call.sim.store.sha256(_vdi_uuid(call, vdi))


@api("sim.vdi_blocks")
def vdi_blocks(call: Call, vdi: str) -> list[int]:
    """Blocks allocated anywhere in the VDI's chain (what a full VHD export contains)."""
    return call.sim.store.full_blocks(_vdi_uuid(call, vdi))


@api("sim.vdi_create")
def vdi_create(call: Call, sr: str, name_label: str, size: Any) -> str:
    return sm.new_vdi(
        call.sim, {"SR": sr, "name_label": str(name_label), "virtual_size": parse_size(size)}
    )


@api("sim.vdi_destroy")
def vdi_destroy(call: Call, vdi: str) -> None:
    """Destroy a VDI even if attached (its VBDs go with it); base copies stay for the GC."""
    with call.db.lock:
        call.db.get("VDI", vdi)
        sm.forget_vdi(call.sim, vdi)
    call.sim.coalescer.kick()


@api("sim.vdi_chain")
def vdi_chain(call: Call, vdi: str) -> list[str]:
    """The VDI uuids of the VHD chain under a disk: its own, then each base copy up to the
    root (what `sm_config["vhd-parent"]` links)."""
    with call.db.lock:
        store = call.sim.store
        leaf = store.leaf_of[_vdi_uuid(call, vdi)]
        return [_vdi_uuid(call, vdi), *store.chain(leaf)[1:]]


@api("sim.coalesce")
def coalesce(call: Call, sr: str = "") -> int:
    """Run the SM's garbage collection now, on one SR or all: base copies nobody needs go,
    those with one child are merged into it. Returns how many base copies went."""
    if sr:
        call.db.get("SR", sr)
    return sm.collect(call.sim, sr or None)


@api("sim.set_coalesce_delay")
def set_coalesce_delay(call: Call, seconds: Any) -> None:
    """How long after a VDI.destroy the GC runs by itself; negative: never (sim.coalesce)."""
    call.sim.coalescer.delay = float(seconds)


@api("sim.sr_set_size")
def sr_set_size(call: Call, sr: str, size: Any) -> None:
    """Set an SR's `physical_size` (`64M`, `10G`, bytes): writes, snapshots and imports that
    would pass it fail SR_FULL."""
    sm.set_sr_size(call.sim, sr, parse_size(size))


@api("sim.sr_fill")
def sr_fill(call: Call, sr: str, free: Any = "0") -> int:
    """Make an SR full: its size becomes what it uses plus `free` bytes. Returns the size."""
    used = call.sim.store.used.get(sr, 0)
    call.db.get("SR", sr)
    size = used + (0 if str(free) in ("", "0") else parse_size(free))
    sm.set_sr_size(call.sim, sr, size)
    return size


@api("sim.set_api_version")
def set_api_version(call: Call, version: str) -> str:
    """Answer as xapi `version` (e.g. `21.3.0`: VM.snapshot without ignore_vdis). Returns the
    version now in force."""
    try:
        call.sim.set_api_version(parse_version(version))
    except ValueError as error:
        raise XapiError("INVALID_VALUE", "version", str(error)) from error
    return version_text(call.sim.api_version)


@api("sim.set_lock_wait")
def set_lock_wait(call: Call, seconds: Any) -> None:
    """How long a VM operation waits for a conflicting one before OTHER_OPERATION_IN_PROGRESS
    (XAPI: two hours)."""
    call.sim.faults.lock_wait = float(seconds)


@api("sim.vm_create")
def vm_create(
    call: Call, name_label: str, disks: Any = 1, disk_size: Any = "64M", power_state: str = "Halted"
) -> str:
    """A VM with `disks` empty disks of `disk_size` on the default SR, a VIF, Halted or Running."""
    db = call.db
    with db.lock:
        vm = db.create(
            "VM",
            schema.new_record(
                "VM",
                name_label=str(name_label),
                memory_static_max=1024**3,
                memory_dynamic_max=1024**3,
                memory_dynamic_min=1024**3,
                memory_static_min=512 * 1024**2,
            ),
        )
        for position in range(int(disks)):
            vdi = sm.new_vdi(
                call.sim,
                {
                    "SR": call.sim.default_sr(),
                    "name_label": f"{name_label} disk {position}",
                    "virtual_size": parse_size(disk_size),
                    "type": "system" if position == 0 else "user",
                },
            )
            link_vbd(db, disk_vbd(vm, vdi, position))
        network = next(iter(db.tables["network"]))
        vif = db.create(
            "VIF", schema.new_record("VIF", VM=vm, network=network, MAC="c2:ff:00:00:00:01")
        )
        db.add_to_set("VM", vm, "VIFs", vif)
        db.add_to_set("network", network, "VIFs", vif)
        set_running(call, vm, str(power_state) == "Running")
        refresh_allowed_operations(db, vm)
    return vm


@api("sim.vm_destroy")
def vm_destroy(call: Call, vm: str) -> None:
    """Destroy a VM whatever its power state, with its own disks (not its snapshots)."""
    db = call.db
    with db.lock:
        record = db.get("VM", vm)
        if record["power_state"] != "Halted":
            set_running(call, vm, False)
        disks = [
            db.tables["VBD"][vbd]["VDI"]
            for vbd in record["VBDs"]
            if db.tables["VBD"][vbd]["type"] == "Disk"
            and db.tables["VBD"][vbd]["VDI"] != schema.NULL
        ]
        forget_vm(call, vm)
        for vdi in disks:
            if db.exists("VDI", vdi):
                sm.forget_vdi(call.sim, vdi)
    call.sim.coalescer.kick()


@api("sim.set_rate_limit")
def set_rate_limit(call: Call, bytes_per_second: Any) -> None:
    """Slow every HTTP transfer (exports and imports) to this rate; 0 removes the limit."""
    call.sim.faults.rate_limit = int(bytes_per_second)


@api("sim.cut_export_after")
def cut_export_after(call: Call, count: Any) -> None:
    """The next export closes its connection after `count` body bytes; its task fails with
    VDI_IO_ERROR. One-shot."""
    call.sim.faults.cut_export_after = int(count)


@api("sim.fail_next")
def fail_next(call: Call, method: str, error: list[str]) -> None:
    """The next call of `method` (an API name like `VM.snapshot`, or `export_raw_vdi` /
    `import_raw_vdi` for the HTTP handlers, whose task then fails) fails with `error`."""
    details = [str(item) for item in error]
    if not details:
        raise XapiError("FIELD_TYPE_ERROR", "error")
    call.sim.faults.fail_next.setdefault(str(method).lower(), []).append(details)


@api("sim.set_async_delay")
def set_async_delay(call: Call, seconds: Any) -> None:
    """Keep each `Async.` task pending for this long (to watch progress or cancel it)."""
    call.sim.faults.async_delay = float(seconds)


@api("sim.restart_toolstack")
def restart_toolstack(call: Call, down_seconds: Any = 0) -> None:
    """Forget every session and task, cut every other open connection (event streams too);
    with `down_seconds`, every host refuses connections for that long, then comes back."""
    call.sim.restart_toolstack(keep=call.connection, down_seconds=float(down_seconds))


def _host(call: Call, host: str) -> str:
    if host in call.db.tables["host"]:
        return host
    if host in call.db.by_uuid["host"]:
        return call.db.by_uuid["host"][host]
    return call.db.resolve("host", host)


@api("sim.failover")
def failover(call: Call, host: str) -> str:
    """Make `host` (ref or uuid) the coordinator; the old one goes down (its port refuses
    connections); sessions and tasks are gone. Returns the new coordinator's address."""
    new_master = _host(call, host)
    call.sim.failover(new_master, keep=call.connection)
    return call.sim.address(new_master)


@api("sim.host_down")
def host_down(call: Call, host: str) -> None:
    """Stop a host's listener (connections refused); members without a live coordinator answer
    HOST_STILL_BOOTING."""
    call.sim.set_host_up(_host(call, host), False, keep=call.connection)


@api("sim.host_up")
def host_up(call: Call, host: str) -> None:
    call.sim.set_host_up(_host(call, host), True)


@api("sim.drop_event_streams")
def drop_event_streams(call: Call) -> int:
    """Cut the connections of every blocked `event.from`; returns how many were cut."""
    from .events import drop_all

    return drop_all(call.db)
