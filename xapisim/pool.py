"""The simulated pool: state (database + block store), hosts and their roles, the call path
shared by XML-RPC and JSON-RPC, the fault switches of the `sim.` namespace, and persistence.

Steps of a call (`Simulator.call`): resolve the method (or its `Async.` twin) → check the host's
role (members answer HOST_IS_SLAVE, orphaned members HOST_STILL_BOOTING) → check the arity as
XAPI's dispatcher does for the simulated xapi version → check the session → consume a
`sim.fail_next` fault → run (a VM operation as a task row of its own, docs/xapi.md §8.7), or
start a task for `Async.`, in which every other check then runs (docs/xapi.md §8.10).
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import schema, seed, sm, tasks
from .api import Call, lookup
from .api.events import drop_all
from .api.registry import version_text
from .db import Database
from .disks import BlockStore
from .errors import XapiError

STATE_FILE = "state.pickle"
# VM methods that hold the VM's operation lock (VM.current_operations) while they run; a
# synchronous call of one runs as a task row of its own, as XAPI's does.
VM_OPERATIONS = frozenset(
    {
        "VM.snapshot",
        "VM.checkpoint",
        "VM.clone",
        "VM.start",
        "VM.start_on",
        "VM.clean_shutdown",
        "VM.hard_shutdown",
        "VM.destroy",
    }
)
SAVE_INTERVAL = 0.3
INACTIVE_SESSION_TIMEOUT = 86400  # xapi_globs.ml
LOCK_WAIT = 7200.0  # helpers.ml Policy.standard: a conflicting VM operation is waited for 2 h
COALESCE_DELAY = 2.0  # seconds between a VDI.destroy and the SM's garbage collection
# The xapi release the simulator answers as (host.software_version["xapi"]); VM.snapshot's
# ignore_vdis exists from 21.4.0 (docs/xapi.md §8.9).
API_VERSION = (25, 6, 0)


@dataclass
class Faults:
    """Switches set through `sim.` methods; none of them is persisted."""

    rate_limit: int = 0  # bytes per second for HTTP transfers, 0 = unlimited
    cut_export_after: int | None = None  # one-shot: cut the next export after this many bytes
    fail_next: dict[str, list[list[str]]] = field(default_factory=dict)
    async_delay: float = 0.0  # seconds each Async task stays pending before it runs
    lock_wait: float = LOCK_WAIT  # how long a VM operation waits for a conflicting one


class Simulator:
    """One pool: its hosts (the coordinator on `port`, members on port+1, …) and their state."""

    def __init__(
        self,
        data_dir: Path,
        *,
        listen_host: str = "127.0.0.1",
        port: int = 0,
        hosts: int = 1,
        vms: int = 4,
        disk_size: int = 64 * 1024 * 1024,
        tls: bool = False,
        password: str = "xapisim",
        sr_size: int | None = None,
        api_version: tuple[int, ...] = API_VERSION,
        coalesce_delay: float = COALESCE_DELAY,
    ) -> None:
        self.data_dir = data_dir
        self.listen_host = listen_host
        self.port = port
        self.tls = tls
        self.password = password
        self.db = Database()
        self.store = BlockStore(data_dir / "disks")
        self.faults = Faults()
        self.hosts: list[str] = []
        self.ports: dict[str, int] = {}
        self.host_up: dict[str, bool] = {}
        self.servers: dict[str, Any] = {}
        self.saver = threading.Thread(target=self._save_loop, name="xapisim-saver", daemon=True)
        self.stopping = threading.Event()
        self.store_dirty = False
        self.save_lock = threading.Lock()
        self.session_used: dict[str, float] = {}
        self.api_version = api_version
        self.transfers: dict[str, int] = {}  # VDI uuid -> exports/imports in flight
        self.coalescer = sm.Coalescer(self, coalesce_delay)
        self._load_or_seed(
            seed.SeedOptions(vms=vms, hosts=hosts, disk_size=disk_size, sr_size=sr_size)
        )
        self.task_gc = tasks.TaskGc(self.db, also=self.expire_sessions)

    # -- state ------------------------------------------------------------------------------

    def _load_or_seed(self, options: seed.SeedOptions) -> None:
        path = self.data_dir / STATE_FILE
        if path.exists():
            with open(path, "rb") as handle:
                state = pickle.load(handle)
            self.db.load(state["db"])
            self.store.load(state["store"])
            self.hosts = state["hosts"]
            sm.reconcile(self)
        else:
            count = options.hosts
            self.hosts = seed.build(self.db, self.store, options, ["" for _ in range(count)])
            sm.reconcile(self)
            self.save()

    @property
    def pool_ref(self) -> str:
        return next(iter(self.db.tables["pool"]))

    @property
    def master_ref(self) -> str:
        return self.db.tables["pool"][self.pool_ref]["master"]

    def address(self, host: str) -> str:
        """What `host.address` and HOST_IS_SLAVE say: `127.0.0.1:<port>` (all hosts share the
        loopback address, so the port is part of it)."""
        return f"{self.listen_host}:{self.ports[host]}"

    def url(self, host: str) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address(host)}/"

    def assign_ports(self, ports: list[int]) -> None:
        """Record the port of each host once listening, and refresh `host.address`."""
        for host, port in zip(self.hosts, ports, strict=True):
            self.ports[host] = port
            self.host_up[host] = True
            if self.db.get("host", host)["address"] != self.address(host):
                self.db.update("host", host, address=self.address(host))
        self.set_api_version(self.api_version)

    def set_api_version(self, version: tuple[int, ...]) -> None:
        """Answer as xapi `version`: which parameters exist (docs/xapi.md §8.9), and what
        `host.software_version["xapi"]` says."""
        self.api_version = version
        with self.db.lock:
            for host in self.hosts:
                software = self.db.get("host", host)["software_version"]
                if software.get("xapi") != version_text(version):
                    self.db.update(
                        "host", host, software_version={**software, "xapi": version_text(version)}
                    )

    def default_sr(self) -> str:
        return self.db.tables["pool"][self.pool_ref]["default_SR"]

    def sr_visible_from(self, sr: str, host: str) -> bool:
        record = self.db.get("SR", sr)
        if record["shared"]:
            return True
        return any(self.db.tables["PBD"][pbd]["host"] == host for pbd in record["PBDs"])

    def sr_host(self, sr: str) -> str:
        """The host that can see a local SR (for the 302 of the HTTP handlers)."""
        for pbd in self.db.get("SR", sr)["PBDs"]:
            return self.db.tables["PBD"][pbd]["host"]
        return self.master_ref

    def save(self) -> None:
        """Write the state atomically: temporary file, fsync, rename. One save at a time: the
        background saver and `sim.` writes (which save at once) share the temporary file."""
        with self.save_lock:
            state = {"db": self.db.dump(), "store": self.store.dump(), "hosts": self.hosts}
            self.store_dirty = False
            path = self.data_dir / STATE_FILE
            temporary = path.with_suffix(".tmp")
            with open(temporary, "wb") as handle:
                pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)

    def _save_loop(self) -> None:
        """Save when something changed. A save costs time proportional to the pool, so the
        interval grows to five times the last save's duration: a 10,000-VM pool is not
        re-pickled after every change while thousands of changes a second come in."""
        interval = SAVE_INTERVAL
        while not self.stopping.wait(interval):
            if self.db.dirty or self.store_dirty:
                began = time.monotonic()
                self.save()
                interval = max(SAVE_INTERVAL, 5 * (time.monotonic() - began))

    def start_background(self) -> None:
        self.saver.start()
        self.task_gc.start()
        self.coalescer.start()
        threading.Thread(target=self._warm_cache, name="xapisim-warm", daemon=True).start()

    def _warm_cache(self) -> None:
        """Encode every record once in the background, so the first `get_all_records` of a big
        pool is a join; the lock is taken per batch so calls are not held up."""
        for cls in ("VM", "VBD", "VDI", "VIF", "SR", "host", "pool", "network", "PBD"):
            refs = list(self.db.tables[cls])
            for start in range(0, len(refs), 500):
                with self.db.lock:
                    for ref in refs[start : start + 500]:
                        if ref in self.db.class_of:
                            self.db.cached(ref)

    def shutdown(self) -> None:
        self.stopping.set()
        self.task_gc.stopping.set()
        self.coalescer.stop()
        self.save()

    # -- the call path ----------------------------------------------------------------------

    def check_role(self, host: str) -> None:
        master = self.master_ref
        if host == master:
            return
        if not self.host_up.get(master, False):
            raise XapiError("HOST_STILL_BOOTING")
        raise XapiError("HOST_IS_SLAVE", self.address(master))

    def check_session(self, session: str) -> None:
        if session not in self.db.tables["session"]:
            raise XapiError("SESSION_INVALID", session)
        self.session_used[session] = time.time()

    def expire_sessions(self, clock: float | None = None) -> int:
        """Destroy sessions idle for longer than XAPI's inactive_session_timeout (24 h)."""
        clock = time.time() if clock is None else clock
        with self.db.lock:
            idle = [
                ref
                for ref in self.db.tables["session"]
                if clock - self.session_used.setdefault(ref, clock) > INACTIVE_SESSION_TIMEOUT
            ]
            for ref in idle:
                self.db.delete("session", ref)
                self.session_used.pop(ref, None)
        return len(idle)

    def call(self, host: str, name: str, params: list[Any], connection: Any = None) -> Any:
        is_async = name[:6].lower() == "async."
        called = name[6:] if is_async else name
        method = lookup(called)
        if method is None or (is_async and not method.asyncable):
            raise XapiError("MESSAGE_METHOD_UNKNOWN", name)
        if not method.name.startswith("sim."):
            self.check_role(host)
        args = list(params)
        method.check_arity(called, len(args) - method.session, self.api_version)
        session = None
        if method.session:
            session = str(args.pop(0))
            self.check_session(session)
        args = method.accepted(args, self.api_version)
        self.inject_fault(name)
        call = Call(self, host, session, method.name, connection=connection, is_async=is_async)
        if is_async:
            return self._start_async(call, method, args)
        if method.name in VM_OPERATIONS:
            return self._run_as_task(call, method, args, session)
        return method.fn(call, *args)

    def _run_as_task(self, call: Call, method: Any, args: list[Any], session: str | None) -> Any:
        """A synchronous VM operation runs as a task row named after the call, destroyed at
        its end: that task is what the VM's `current_operations` names (docs/xapi.md §8.7)."""
        task = tasks.create(self.db, method.name, "", self.master_ref, session)
        try:
            return method.fn(replace(call, task=task), *args)
        finally:
            with self.db.lock:
                if self.db.exists("task", task):
                    self.db.delete("task", task)
                tasks.forget(task)

    def simulate_work(self, call: Call) -> None:
        """The `sim.set_async_delay` wait of an `Async.` call: progress moves in tenths, and a
        `task.cancel` (looked for every 50 ms, as an operation that polls would) ends it with
        TASK_CANCELLED."""
        delay = self.faults.async_delay
        began = time.monotonic()
        while True:
            if tasks.cancel_requested(self.db, call.task):
                raise XapiError("TASK_CANCELLED", call.task)
            elapsed = time.monotonic() - began
            if elapsed >= delay:
                return
            tasks.set_progress(self.db, call.task, int(10 * elapsed / delay) / 10)
            time.sleep(min(0.05, delay - elapsed))

    def inject_fault(self, name: str) -> None:
        """Raise the error queued by `sim.fail_next` for this method name, once."""
        queue = self.faults.fail_next.get(name.lower())
        if queue:
            details = queue.pop(0)
            if not queue:
                del self.faults.fail_next[name.lower()]
            raise XapiError(*details)

    def _start_async(self, call: Call, method: Any, args: list[Any]) -> str:
        """The task at once; the work, every check included, in a thread. A VM operation
        releases its VM (vm_lifecycle) before the task completes, so a client that starts the
        next operation when it sees the task end does not find the VM busy."""
        task = tasks.create(self.db, f"Async.{method.name}", "", self.master_ref, call.session)
        call = replace(call, task=task)

        def run() -> None:
            error: XapiError | None = None
            result = None
            try:
                if method.name not in VM_OPERATIONS:
                    self.simulate_work(call)  # a VM operation waits holding its lock
                result = method.fn(call, *args)
            except XapiError as failure:
                error = failure
            except Exception as failure:  # a simulator bug must still end the task
                error = XapiError("INTERNAL_ERROR", repr(failure))
            if error is None:
                tasks.succeed(self.db, task, result)
            else:
                tasks.fail(self.db, task, error)

        threading.Thread(target=run, name=f"xapisim-{method.name}", daemon=True).start()
        return task

    # -- pool-level events (toolstack restart, failover, host power) -------------------------

    def wipe_volatile(self) -> None:
        """Sessions and tasks are not persisted: a restart or failover forgets them
        (docs/xapi.md §7.5)."""
        self.db.wipe("session")
        self.db.wipe("task")

    def restart_toolstack(self, keep: Any = None, down_seconds: float = 0.0) -> None:
        """Forget sessions and tasks and cut connections; with `down_seconds`, every live host
        also refuses connections for that long, as while xapi restarts."""
        self.wipe_volatile()
        drop_all(self.db)
        for server in self.servers.values():
            server.drop_connections(keep=keep)
        if down_seconds > 0:
            live = [host for host, up in self.host_up.items() if up]
            for host in live:
                self.set_host_up(host, False, keep=keep)

            def come_back() -> None:
                for host in live:
                    self.set_host_up(host, True)

            timer = threading.Timer(down_seconds, come_back)
            timer.daemon = True
            timer.start()

    def failover(self, new_master: str, keep: Any = None) -> None:
        old = self.master_ref
        self.db.get("host", new_master)
        if new_master == old:
            raise XapiError("OPERATION_NOT_ALLOWED", "host is already the pool master")
        self.set_host_up(old, False, keep=keep)
        self.db.update("pool", self.pool_ref, master=new_master)
        self.wipe_volatile()
        drop_all(self.db)
        for server in self.servers.values():
            server.drop_connections(keep=keep)

    def set_host_up(self, host: str, up: bool, keep: Any = None) -> None:
        self.db.get("host", host)
        server = self.servers[host]
        if up and not self.host_up[host]:
            server.listen()
        elif not up and self.host_up[host]:
            server.stop_listening(keep=keep)
        self.host_up[host] = up


__all__ = ["Faults", "Simulator", "schema"]
