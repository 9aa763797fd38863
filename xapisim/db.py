"""The object store: tables of records, a change log for `event.from`, a cache of encoded records.

Every mutation goes through `Database` under one lock and bumps the generation counter, which is
what `event.from` tokens carry (docs/xapi.md §7). The change log is append-only with increasing
generations, so `changes_since` is a bisect plus a scan of what changed, never of the whole pool.
Encoded XML of each record is cached and dropped on change, so `VM.get_all_records` of 10,000 VMs
is mostly a string join.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable
from typing import Any

from . import schema
from .errors import XapiError, handle_invalid
from .wire import CachedRecord, encode_record

# Change-log operations.
ADD, MOD, DEL = "add", "mod", "del"
# Beyond this many log entries the oldest half is dropped; older tokens get a full resync.
LOG_LIMIT = 500_000


class Database:
    """All records of one simulated pool, keyed by class (canonical XAPI name) then ref."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.tables: dict[str, dict[str, dict[str, Any]]] = {cls: {} for cls in schema.DEFAULTS}
        self.by_uuid: dict[str, dict[str, str]] = {cls: {} for cls in schema.DEFAULTS}
        self.class_of: dict[str, str] = {}
        self.generation = 0
        self.created_at: dict[str, int] = {}
        self.log_gens: list[int] = []
        self.log: list[tuple[str, str, str]] = []  # (op, class, ref), parallel to log_gens
        self.log_start = 0  # generation before the oldest entry still in the log
        self.xml_cache: dict[str, str] = {}
        self.dirty = False
        self.wakeups = 0  # bumped to wake `event.from` waiters without a change

    # -- reads ------------------------------------------------------------------------------

    def get(self, cls: str, ref: str) -> dict[str, Any]:
        """The live record of `ref`, or HANDLE_INVALID [class, ref]."""
        record = self.tables[cls].get(ref)
        if record is None:
            raise handle_invalid(cls, ref)
        return record

    def exists(self, cls: str, ref: str) -> bool:
        return ref in self.tables[cls]

    def ref_by_uuid(self, cls: str, uuid: str) -> str:
        ref = self.by_uuid[cls].get(uuid)
        if ref is None:
            raise XapiError("UUID_INVALID", cls, uuid)
        return ref

    def resolve(self, cls: str, ref_or_uuid: str) -> str:
        """A ref from a ref or a UUID (HTTP handlers accept both, docs/xapi.md §9.1)."""
        if ref_or_uuid in self.tables[cls]:
            return ref_or_uuid
        ref = self.by_uuid[cls].get(ref_or_uuid)
        if ref is None:
            raise handle_invalid(cls, ref_or_uuid)
        return ref

    def cached(self, ref: str) -> CachedRecord:
        """The record with its XML encoding (computed once per change)."""
        cls = self.class_of[ref]
        record = self.tables[cls][ref]
        xml = self.xml_cache.get(ref)
        if xml is None:
            xml = self.xml_cache[ref] = encode_record(record)
        return CachedRecord(record, xml)

    def all_cached(self, cls: str) -> dict[str, CachedRecord]:
        with self.lock:
            return {ref: self.cached(ref) for ref in self.tables[cls]}

    # -- writes -----------------------------------------------------------------------------

    def _bump(self, op: str, cls: str, ref: str) -> int:
        self.generation += 1
        if cls not in schema.SILENT:
            self.log_gens.append(self.generation)
            self.log.append((op, cls, ref))
            if len(self.log) > LOG_LIMIT:
                half = len(self.log) // 2
                self.log_start = self.log_gens[half - 1]
                del self.log[:half]
                del self.log_gens[:half]
        if cls not in schema.VOLATILE:
            self.dirty = True
        self.changed.notify_all()
        return self.generation

    def create(self, cls: str, record: dict[str, Any], ref: str | None = None) -> str:
        with self.lock:
            ref = ref or schema.new_ref()
            self.tables[cls][ref] = record
            self.by_uuid[cls][record["uuid"]] = ref
            self.class_of[ref] = cls
            self.created_at[ref] = self._bump(ADD, cls, ref)
            return ref

    def update(self, cls: str, ref: str, **fields: Any) -> None:
        with self.lock:
            record = self.get(cls, ref)
            record.update(fields)
            self.xml_cache.pop(ref, None)
            self._bump(MOD, cls, ref)

    def touch(self, cls: str, ref: str) -> int:
        """Record a `mod` of `ref` without changing it; returns the generation before it."""
        with self.lock:
            self.get(cls, ref)
            before = self.generation
            self._bump(MOD, cls, ref)
            return before

    def add_to_set(self, cls: str, ref: str, field: str, item: str) -> None:
        with self.lock:
            record = self.tables[cls].get(ref)
            if record is not None and item not in record[field]:
                self.update(cls, ref, **{field: [*record[field], item]})

    def remove_from_set(self, cls: str, ref: str, field: str, item: str) -> None:
        with self.lock:
            record = self.tables[cls].get(ref)
            if record is not None and item in record[field]:
                self.update(cls, ref, **{field: [x for x in record[field] if x != item]})

    def delete(self, cls: str, ref: str) -> None:
        with self.lock:
            record = self.get(cls, ref)
            del self.tables[cls][ref]
            self.by_uuid[cls].pop(record["uuid"], None)
            self.class_of.pop(ref, None)
            self.xml_cache.pop(ref, None)
            self._bump(DEL, cls, ref)
            self.created_at.pop(ref, None)

    def wipe(self, cls: str) -> None:
        """Drop a whole table without events, as a toolstack restart drops tasks
        (docs/xapi.md §7.5)."""
        with self.lock:
            for ref, record in self.tables[cls].items():
                self.class_of.pop(ref, None)
                self.xml_cache.pop(ref, None)
                self.created_at.pop(ref, None)
                self.by_uuid[cls].pop(record["uuid"], None)
            self.tables[cls] = {}
            self.generation += 1
            self.changed.notify_all()

    def wake_waiters(self) -> None:
        with self.lock:
            self.wakeups += 1
            self.changed.notify_all()

    # -- events -----------------------------------------------------------------------------

    def changes_since(
        self, since: int | None, classes: Iterable[str] | None
    ) -> list[tuple[str, str, str, int]]:
        """(op, class, ref, generation) for objects changed after `since`, one entry per object.

        `since=None` (token "") lists every object as `add`. An object created in the window is
        an `add` even if modified later; created and deleted in the window, it is left out; a
        row wiped without a `del` (tasks after a restart) is left out too.
        """
        wanted = None if classes is None else set(classes)
        out: list[tuple[str, str, str, int]] = []
        if since is None or since < self.log_start:
            for cls, table in self.tables.items():
                if cls in schema.SILENT or (wanted is not None and cls not in wanted):
                    continue
                out.extend((ADD, cls, ref, self.created_at.get(ref, 0)) for ref in table)
            return out
        start = bisect.bisect_right(self.log_gens, since)
        latest: dict[str, tuple[str, str, int]] = {}
        for index in range(start, len(self.log)):
            op, cls, ref = self.log[index]
            if wanted is not None and cls not in wanted:
                continue
            latest[ref] = (op, cls, self.log_gens[index])
        for ref, (op, cls, gen) in latest.items():
            if op == DEL:
                created = self._deleted_created_in_window(ref, start)
                if not created:
                    out.append((DEL, cls, ref, gen))
                continue
            if ref not in self.tables[cls]:
                continue
            created_gen = self.created_at.get(ref, 0)
            out.append((ADD if created_gen > since else MOD, cls, ref, gen))
        return out

    def _deleted_created_in_window(self, ref: str, start: int) -> bool:
        for index in range(start, len(self.log)):
            op, _cls, logged_ref = self.log[index]
            if logged_ref == ref:
                return op == ADD
        return False

    def counts(self) -> dict[str, int]:
        return {cls.lower(): len(table) for cls, table in self.tables.items()}

    # -- persistence ------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """What survives a restart: every table but tasks and sessions, and the generation."""
        with self.lock:
            self.dirty = False
            return {
                "generation": self.generation,
                "tables": {
                    cls: {ref: dict(record) for ref, record in table.items()}
                    for cls, table in self.tables.items()
                    if cls not in schema.VOLATILE
                },
                "created_at": {
                    ref: gen
                    for ref, gen in self.created_at.items()
                    if self.class_of.get(ref) not in schema.VOLATILE
                },
            }

    def load(self, state: dict[str, Any]) -> None:
        with self.lock:
            self.generation = state["generation"]
            self.log_start = self.generation
            for cls, table in state["tables"].items():
                self.tables[cls] = table
                for ref, record in table.items():
                    self.by_uuid[cls][record["uuid"]] = ref
                    self.class_of[ref] = cls
            self.created_at.update(state["created_at"])
