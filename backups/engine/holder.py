"""Who holds a lock: the process identity a lease records (docs/backup-engine.md §6).

A lease names its holder's kernel boot id, pid namespace, pid and the process's start time, so
that another process can tell later, without asking anyone, whether that holder still runs: a
pid means the same process only on one boot, in one namespace, while the process started then
lives. Anything it cannot be sure of (another machine, another namespace, no ``/proc``) counts
as alive; only a holder that provably runs no more is gone.
"""

from __future__ import annotations

import os
from pathlib import Path


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _boot_id() -> str | None:
    """This kernel boot's id (Linux): two machines, or two boots, never share it."""
    text = _read("/proc/sys/kernel/random/boot_id")
    return text.strip() if text else None


def _pid_namespace() -> int | None:
    """The pid namespace of this process: pids mean the same only inside one."""
    try:
        return Path("/proc/self/ns/pid").stat().st_ino
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None when there is none."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[19])


def process_identity() -> dict:
    """Who holds a lease, precisely enough to tell later whether that process still runs."""
    pid = os.getpid()
    return {
        "boot": _boot_id(),
        "pidns": _pid_namespace(),
        "pid": pid,
        "started": _start_time(pid),
    }


def holder_is_gone(content: dict) -> bool:
    """True only when the lease's holder provably runs no more: it ran on this kernel boot and in
    this pid namespace, and its pid is free or taken by a process started at another time."""
    boot = _boot_id()
    if not boot or content.get("boot") != boot or content.get("pidns") != _pid_namespace():
        return False
    pid = content.get("pid")
    if not isinstance(pid, int):
        return False
    started = _start_time(pid)
    if started is None:
        return True
    return content.get("started") is not None and started != content["started"]
