"""Run one VM backup in its own process (the kill test SIGKILLs it mid-transfer).

``python -m tests.engine.run_backup '<json>'`` with keys url, password, vm, remotes
([[id, name, path], …]), job and schedule (dicts of settings), lease, heartbeat. Prints
``transfer started`` when the first bytes of a disk are written, then the outcome's status.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager

from backups.engine import JobSettings, NullProgress, RemoteAdapter, ScheduleSettings, backup_vm
from pools.xapi import XapiClient


class Announcing(NullProgress):
    def __init__(self) -> None:
        self.said = False

    @contextmanager
    def subtask(self, name, *, kind="", total=None):
        yield Announcing() if kind == "transfer" else self

    def advance(self, units: float) -> None:
        if not self.said:
            self.said = True
            print("transfer started", flush=True)


def main() -> None:
    options = json.loads(sys.argv[1])
    with XapiClient(options["url"], "root", options["password"], timeout=20) as client:
        outcome = backup_vm(
            client,
            options["vm"],
            job=JobSettings(**options["job"]),
            schedule=ScheduleSettings(**options["schedule"]),
            remotes=[
                RemoteAdapter(path, remote_id=rid, name=name)
                for rid, name, path in options["remotes"]
            ],
            progress=Announcing(),
            holder="kill test",
            lock_lease=options["lease"],
            lock_heartbeat=options["heartbeat"],
        )
    print(outcome.status, outcome.error, flush=True)


if __name__ == "__main__":
    main()
