"""Diagnostic Celery tasks: check that workers answer (``manage.py check_workers``)."""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="xoweb.ping")
def ping() -> dict[str, object]:
    return {"hostname": socket.gethostname(), "pid": os.getpid()}
