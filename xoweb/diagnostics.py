"""Diagnostic Celery tasks: check that workers answer, and rehearse the redelivery policy.

``manage.py check_workers`` sends :func:`ping`. :func:`canary` records every delivery in a
journal file, so an operator (or a test) can kill the worker process that runs it and see the
message come back, as the policy in settings.py promises.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from celery import shared_task


@shared_task(name="xoweb.ping")
def ping() -> dict[str, object]:
    return {"hostname": socket.gethostname(), "pid": os.getpid()}


@shared_task(name="xoweb.canary", bind=True)
def canary(self, journal: str, seconds: float) -> dict[str, object]:
    """Write ``start <pid> <redelivered>`` to ``journal``, sleep, then write ``end <pid>``."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    path = Path(journal)
    with path.open("a") as handle:
        handle.write(f"start {os.getpid()} {int(redelivered)}\n")
    time.sleep(seconds)
    with path.open("a") as handle:
        handle.write(f"end {os.getpid()}\n")
    return {"pid": os.getpid(), "redelivered": redelivered}
