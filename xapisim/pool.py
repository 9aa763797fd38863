"""The simulated pool: state (database + block store), hosts and their roles, the call path
shared by XML-RPC and JSON-RPC, the fault switches of the `sim.` namespace, and persistence.

Steps of a call (`Simulator.call`): resolve the method (or its `Async.` twin) → check the host's
role (members answer HOST_IS_SLAVE, orphaned members HOST_STILL_BOOTING) → check the session →
check the arity → consume a `sim.fail_next` fault → run (or start a task for `Async.`).
"""

from __future__ import annotations

import os
import pickle
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import schema, seed, tasks
from .api import Call, lookup
from .api.events import drop_all
from .db import Database
from .disks import BlockStore
from .errors import XapiError

STATE_FILE = "state.pickle"
# VM methods that take the VM's operation lock (VM.current_operations) while they run.
VM_OPERATIONS = {
    "VM.snapshot": "snapshot",
    "VM.checkpoint": "checkpoint",
    "VM.clone": "clone",
    "VM.start": "start",
    "VM.start_on": "start_on",
    "VM.clean_shutdown": "clean_shutdown",
    "VM.hard_shutdown": "hard_shutdown",
    "VM.destroy": "destroy",
}
SAVE_INTERVAL = 0.3
INACTIVE_SESSION_TIMEOUT = 86400  # xapi_globs.ml


@dataclass
class Faults:
    """Switches set through `sim.` methods; none of them is persisted."""

    rate_limit: int = 0  # bytes per second for HTTP transfers, 0 = unlimited
    cut_export_after: int | None = None  # one-shot: cut the next export after this many bytes
    fail_next: dict[str, list[list[str]]] = field(default_factory=dict)
    async_delay: float = 0.0  # seconds each Async task stays pending before it runs


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
    ) -> None:
        self.data_dir = data_dir
        self.listen_host = listen_host
        self.port = port
        self.tls = tls
        self.password = password
        self.db = Database()
        self.store = BlockStore(data_dir / "disks")
        self.faults = Faults()
        self.bound_tasks: set[str] = set()
        self.hosts: list[str] = []
        self.ports: dict[str, int] = {}
        self.host_up: dict[str, bool] = {}
        self.servers: dict[str, Any] = {}
        self.saver = threading.Thread(target=self._save_loop, name="xapisim-saver", daemon=True)
        self.stopping = threading.Event()
        self.store_dirty = False
        self.save_lock = threading.Lock()
        self.session_used: dict[str, float] = {}
        self._load_or_seed(seed.SeedOptions(vms=vms, hosts=hosts, disk_size=disk_size))
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
        else:
            count = options.hosts
            self.hosts = seed.build(self.db, self.store, options, ["" for _ in range(count)])
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
        method = lookup(name[6:] if is_async else name)
        if method is None or (is_async and not method.asyncable):
            raise XapiError("MESSAGE_METHOD_UNKNOWN", name)
        if not method.name.startswith("sim."):
            self.check_role(host)
        session = None
        args = list(params)
        if method.session:
            if not args:
                raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", name, method.total, 0)
            session = str(args.pop(0))
            self.check_session(session)
        if not method.required <= len(args) <= method.total:
            raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", name, method.total, len(args))
        self.inject_fault(name)
        call = Call(self, host, session, method.name, connection=connection)
        operation = VM_OPERATIONS.get(method.name)
        if operation is not None:
            self.assert_no_operation(args[0])
        if is_async:
            return self._start_async(call, method, args, operation)
        return method.fn(call, *args)

    def assert_no_operation(self, vm: str) -> None:
        """XAPI refuses a VM operation while an `Async.` one is pending on the same VM."""
        with self.db.lock:
            record = self.db.tables["VM"].get(vm)
            if record and record["current_operations"]:
                task, op = next(iter(record["current_operations"].items()))
                raise XapiError("OTHER_OPERATION_IN_PROGRESS", "VM", vm, op, task)

    def inject_fault(self, name: str) -> None:
        """Raise the error queued by `sim.fail_next` for this method name, once."""
        queue = self.faults.fail_next.get(name.lower())
        if queue:
            details = queue.pop(0)
            if not queue:
                del self.faults.fail_next[name.lower()]
            raise XapiError(*details)

    def _start_async(self, call: Call, method: Any, args: list[Any], operation: str | None) -> str:
        task = tasks.create(self.db, f"Async.{method.name}", "", self.master_ref, call.session)
        self.bound_tasks.add(task)
        call = replace(call, task=task)
        locked = args[0] if operation is not None else None
        if locked is not None:
            self._mark_operation(locked, {task: operation})

        def run() -> None:
            error: XapiError | None = None
            result = None
            try:
                steps = 10
                for step in range(steps if self.faults.async_delay else 0):
                    if tasks.is_cancelling(self.db, task):
                        raise XapiError("TASK_CANCELLED", task)
                    tasks.set_progress(self.db, task, step / steps)
                    time.sleep(self.faults.async_delay / steps)
                if tasks.is_cancelling(self.db, task):
                    raise XapiError("TASK_CANCELLED", task)
                result = method.fn(call, *args)
            except XapiError as failure:
                error = failure
            except Exception as failure:  # a simulator bug must still end the task
                error = XapiError("INTERNAL_ERROR", repr(failure))
            # Release the VM before the task completes: a client that starts the next
            # operation as soon as it sees the task end must not find the VM still busy.
            self.bound_tasks.discard(task)
            if locked is not None:
                self._mark_operation(locked, {})
            if error is None:
                tasks.succeed(self.db, task, result)
            else:
                tasks.fail(self.db, task, error)

        threading.Thread(target=run, name=f"xapisim-{method.name}", daemon=True).start()
        return task

    def _mark_operation(self, vm: str, operations: dict[str, str]) -> None:
        with self.db.lock:
            if self.db.exists("VM", vm):
                self.db.update("VM", vm, current_operations=operations)

    # -- pool-level events (toolstack restart, failover, host power) -------------------------

    def wipe_volatile(self) -> None:
        """Sessions and tasks are not persisted: a restart or failover forgets them
        (docs/xapi.md §7.5)."""
        self.db.wipe("session")
        self.db.wipe("task")
        self.bound_tasks.clear()

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
