"""The heartbeat: one daemon thread per process keeps the rows this process works on alive.

A process doing long work holds its rows here (``heartbeat.hold(Task, pk)``); every
``TASK_HEARTBEAT_SECONDS`` the thread touches their heartbeat column, even while the work
blocks (a snapshot, a slow XAPI call). When the process dies the beats stop, and whoever reads
the row later sees a heartbeat older than its timeout: the work was interrupted (for tasks,
:func:`tasks.services.mark_interrupted` and ``Task.effective_status``).

Any row with a heartbeat column can be held, so that one mechanism beats for everything a
process runs: the ``Task`` rows people watch (column ``updated``), and the run rows that own a
backup's claim (docs/architecture.md §Claims and heartbeats). A row is touched only while it
still has the status it had when it was held (``running``): a row that someone else ended (the
sweep said interrupted, a cancel) is never revived.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Model

logger = logging.getLogger(__name__)

#: What a held row is grouped by: one UPDATE per (model, column, condition) at each beat.
_Group = tuple[type[Model], str, tuple[tuple[str, Any], ...]]


class Heartbeat:
    """The rows held by this process, and the thread that beats for them."""

    def __init__(self, clock: Callable[[], float] = time.time, *, thread: bool = True) -> None:
        """``thread=False``: no thread, the caller beats (tests with an injected clock)."""
        self.clock = clock
        self.threaded = thread
        self._held: dict[_Group, set[Any]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._wake = threading.Event()

    def hold(self, model: type[Model], pk: Any, *, field: str = "updated", **still: Any) -> None:
        """Beat for row ``pk`` of ``model`` (column ``field``) while it matches ``still``."""
        group = (model, field, tuple(sorted(still.items())))
        with self._lock:
            if self._pid != os.getpid():  # a forked child inherits neither rows nor thread
                self._held, self._thread, self._pid = {}, None, os.getpid()
            self._held.setdefault(group, set()).add(pk)
            if self.threaded and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._run, name="xoweb-heartbeat", daemon=True
                )
                self._thread.start()

    def release(self, model: type[Model], pk: Any) -> None:
        """Stop beating for row ``pk`` of ``model``."""
        with self._lock:
            for (held_model, _, _), pks in self._held.items():
                if held_model is model:
                    pks.discard(pk)

    @contextmanager
    def holding(
        self, model: type[Model], pk: Any, *, field: str = "updated", **still: Any
    ) -> Iterator[None]:
        """``hold`` for the duration of a ``with`` block."""
        self.hold(model, pk, field=field, **still)
        try:
            yield
        finally:
            self.release(model, pk)

    def held(self, model: type[Model]) -> list[Any]:
        with self._lock:
            return sorted(
                pk
                for (held_model, _, _), pks in self._held.items()
                if held_model is model
                for pk in pks
            )

    def beat(self) -> int:
        """Touch every held row now (one UPDATE per group); return how many rows were touched."""
        with self._lock:
            groups = [(group, list(pks)) for group, pks in self._held.items() if pks]
        moment = datetime.fromtimestamp(self.clock(), tz=UTC)
        touched = 0
        for (model, field, still), pks in groups:
            touched += model.objects.filter(pk__in=pks, **dict(still)).update(**{field: moment})
        return touched

    def _run(self) -> None:
        while True:
            self._wake.wait(settings.TASK_HEARTBEAT_SECONDS)
            self._wake.clear()
            try:
                close_old_connections()
                self.beat()
            except Exception:
                logger.exception("heartbeat failed; retrying at the next beat")
            finally:
                connection.close()


#: The heartbeat of this process.
heartbeat = Heartbeat()
