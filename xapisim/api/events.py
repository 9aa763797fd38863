"""event.from / event.inject / event.get_current_id (docs/xapi.md §7).

Tokens are `"%020d,%020d"` (database generation, message generation) so they compare as strings.
`event.from` blocks until a matching change exists or the float timeout expires, then waits
XAPI's 50 ms batching delay (none for task-only subscriptions) and collects.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

from .. import schema
from ..errors import ConnectionDropped, XapiError
from ..wire import I4
from .registry import Call, api

_TOKEN = re.compile(r"^(\d+),(\d+)$")
BATCH_DELAY = 0.05


def token_of(generation: int) -> str:
    return f"{generation:020d},{0:020d}"


def _parse_token(token: str) -> int | None:
    """Only `""` or `"a,b"` (xapi_event.ml Token.of_string); anything else is refused."""
    if token == "":
        return None
    match = _TOKEN.match(token)
    if match is None:
        raise XapiError("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
    return int(match.group(1))


def _parse_classes(classes: list[str]) -> tuple[set[str] | None, dict[str, set[str]]]:
    """(canonical classes or None for all, per-class ref filters from `class/ref` items).

    Like XAPI, any name is accepted and lower-cased; a class the simulator does not model
    (`message`, `VM_metrics`) or that makes no events (`session`) just brings none."""
    wanted: set[str] = set()
    whole: set[str] = set()
    only: dict[str, set[str]] = {}
    everything = False
    for item in classes:
        text = str(item)
        if text == "*":
            everything = True
            continue
        name, _, ref = text.partition("/")
        cls = schema.CLASSES.get(name.lower())
        if cls is None or cls in schema.SILENT:
            continue
        wanted.add(cls)
        if ref:
            only.setdefault(cls, set()).add(ref)
        else:
            whole.add(cls)
    if everything:
        return None, {}
    return wanted, {cls: refs for cls, refs in only.items() if cls not in whole}


class EventWaiter:
    """One blocked `event.from`, so `sim.drop_event_streams` can cut it."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.dropped = False


WAITERS: set[EventWaiter] = set()
WAITERS_LOCK = threading.Lock()


@api("event.from")
def event_from(call: Call, classes: list[str], token: str, timeout: Any) -> dict[str, Any]:
    db = call.db
    wanted, only = _parse_classes(list(classes))
    since = _parse_token(str(token))
    deadline = time.monotonic() + float(timeout)
    task_only = all(
        str(item).lower() == "task" or str(item).lower().startswith("task/") for item in classes
    ) and bool(classes)
    waiter = EventWaiter(call.connection)
    with WAITERS_LOCK:
        WAITERS.add(waiter)
    try:
        batched = False
        while True:
            with db.lock:
                if waiter.dropped:
                    raise ConnectionDropped()
                if call.session not in db.tables["session"]:
                    raise XapiError("SESSION_INVALID", call.session)
                changes = db.changes_since(since, wanted)
                if only:
                    changes = [c for c in changes if c[1] not in only or c[2] in only[c[1]]]
                remaining = deadline - time.monotonic()
                if not changes:
                    if remaining <= 0:
                        return _result(db, [])
                    db.changed.wait(remaining)
                    continue
                if batched or task_only:
                    return _result(db, changes)
            # Let a burst of changes land in one answer, as XAPI's event_from_delay does.
            batched = True
            time.sleep(BATCH_DELAY)
    finally:
        with WAITERS_LOCK:
            WAITERS.discard(waiter)


def _result(db: Any, changes: list[tuple[str, str, str, int]]) -> dict[str, Any]:
    events = []
    for op, cls, ref, generation in changes:
        event = {
            "id": str(generation),
            "timestamp": "0.0",
            "class": cls.lower(),
            "operation": op,
            "ref": ref,
        }
        if op != "del":
            event["snapshot"] = db.cached(ref)
        events.append(event)
    return {
        "events": events,
        "valid_ref_counts": {cls: I4(count) for cls, count in db.counts().items()},
        "token": token_of(db.generation),
    }


def drop_all(db: Any) -> int:
    """Cut every blocked `event.from` connection and wake its thread; returns how many."""
    with WAITERS_LOCK:
        waiters = list(WAITERS)
    for waiter in waiters:
        waiter.dropped = True
        if waiter.connection is not None:
            try:
                waiter.connection.shutdown(2)
            except OSError:
                pass
    db.wake_waiters()
    return len(waiters)


@api("event.inject")
def inject(call: Call, cls: str, ref: str) -> str:
    """Touch an object; the token returned is the one *before* that change."""
    canonical = schema.CLASSES.get(str(cls).lower())
    if canonical is None:
        raise XapiError("EVENT_SUBSCRIPTION_PARSE_FAILURE", cls)
    return token_of(call.db.touch(canonical, ref))


@api("event.get_current_id")
def get_current_id(call: Call) -> str:
    return str(call.db.generation)
