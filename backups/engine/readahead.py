"""Produce the next item in a thread while the caller handles this one.

Socket reads, ``pread`` and the hash release the GIL, so reading the next block of an export (or
of a chain, for a restore) overlaps with hashing, writing or sending this one. At most ``depth``
items wait in the queue: memory stays a few blocks whatever the disk's size. Each item must own
its buffer (``parse_stream`` and ``Chain.read_block`` give a new one per block).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items``, produced one ahead by a thread. An exception of the producer is raised here;
    closing this generator stops the producer at its next item (a producer blocked in a read
    must be woken by its caller, e.g. by closing the connection it reads)."""
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
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
