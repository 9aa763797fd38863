"""Produce the next item in a thread while the caller handles this one.

Socket reads, ``pread`` and the hash release the GIL, so reading the next block of an export (or
of a chain, for a restore) overlaps with hashing, writing or sending this one. At most ``depth``
items wait in the queue: memory stays a few blocks whatever the disk's size. Each item must own
its buffer (``parse_stream`` and ``Chain.read_block`` give a new one per block).

While the consumer waits for an item, it calls ``idle`` every ``idle_seconds`` (the transfer
checks there whether it was cancelled, so that a cancel is seen even while the export sends
nothing); when the consumer stops early, ``wake`` is called to unblock a producer stuck in a
read (the transfer closes the export's connection), before the producer is waited for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(
    items: Iterable[T],
    depth: int = 1,
    *,
    idle: Callable[[], None] | None = None,
    idle_seconds: float = 0.5,
    wake: Callable[[], None] | None = None,
) -> Iterator[T]:
    """``items``, produced one ahead by a thread. An exception of the producer is raised here,
    and so is one raised by ``idle``; closing this generator (or an exception) stops the
    producer at its next item, after ``wake()`` if it is still running."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put((item, None), timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put((_DONE, None))
        except BaseException as error:  # handed to the consumer, raised there
            slots.put((None, error))

    thread = threading.Thread(target=produce, name="read ahead", daemon=True)
    thread.start()
    finished = False
    try:
        while True:
            try:
                item, error = slots.get(timeout=idle_seconds if idle is not None else None)
            except queue.Empty:
                idle()  # type: ignore[misc]  (only reached when idle is given)
                continue
            if error is not None:
                finished = True
                raise error
            if item is _DONE:
                finished = True
                return
            yield item
    finally:
        stop.set()
        if not finished and wake is not None and thread.is_alive():
            wake()
        while thread.is_alive():
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
