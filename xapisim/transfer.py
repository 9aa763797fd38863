"""How export bodies leave and upload bodies are paced: a throttle for `sim.set_rate_limit`, and
a sender that copies written blocks with sendfile (no pass through Python) when nothing needs to
see the bytes, else writes them in slices so rate limits and cuts apply."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .disks import BLOCK_SIZE, ZERO_BLOCK

if TYPE_CHECKING:
    from .pool import Simulator
    from .server import Handler

SEND_SLICE = 256 * 1024
SMALL = 64 * 1024


class ExportCut(Exception):
    """`sim.cut_export_after` closed the connection: the client sees the body stop there."""


class Throttle:
    """Sleeps so that a transfer does not exceed the simulator's current rate limit."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.started = time.monotonic()
        self.done = 0

    def account(self, count: int) -> None:
        self.done += count
        rate = self.sim.faults.rate_limit
        if rate > 0:
            ahead = self.done / rate - (time.monotonic() - self.started)
            if ahead > 0:
                time.sleep(ahead)
        else:
            self.started = time.monotonic()
            self.done = 0


class Sender:
    """Writes an export body: block data by sendfile from the block file when nothing needs
    to see the bytes (plain HTTP, no rate limit, no cut), else through Python in slices."""

    def __init__(
        self,
        handler: Handler,
        vdi_uuid: str,
        size: int,
        fmt: str,
        cut: int | None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.handler = handler
        self.store = handler.sim.store
        self.vdi_uuid = vdi_uuid
        self.size = size
        self.fmt = fmt
        self.cut = cut
        self.sent = 0
        self.progress = progress  # told the bytes sent so far, after each piece or slice
        self.throttle = Throttle(handler.sim)
        self.plain = isinstance(handler.connection, socket.socket) and not isinstance(
            handler.connection, ssl.SSLSocket
        )

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        if self.cut is not None and self.sent + len(view) > self.cut:
            self.handler.wfile.write(view[: self.cut - self.sent])
            self.handler.wfile.flush()
            raise ExportCut(self.cut)
        if self.handler.sim.faults.rate_limit or self.cut is not None:
            for start in range(0, len(view), SEND_SLICE):
                chunk = view[start : start + SEND_SLICE]
                self.handler.wfile.write(chunk)
                self.throttle.account(len(chunk))
                if self.progress is not None:
                    self.progress(self.sent + start + len(chunk))
        elif self.plain and len(view) <= SMALL:
            # A bitmap sector before a block sent by sendfile: MSG_MORE lets the kernel put it
            # in the same segments as the block instead of a tiny packet of its own.
            self.handler.connection.sendall(view, socket.MSG_MORE)
        else:
            self.handler.wfile.write(view)
        self.sent += len(view)

    def block(self, index: int) -> None:
        """Send block `index`: 2 MiB in a VHD, up to the disk's end in a raw stream."""
        length = (
            BLOCK_SIZE if self.fmt == "vhd" else min(BLOCK_SIZE, self.size - index * BLOCK_SIZE)
        )
        path = self.store.block_file(self.vdi_uuid, index)
        fast = (
            self.plain
            and path is not None
            and self.cut is None
            and not self.handler.sim.faults.rate_limit
        )
        if not fast:
            data = self.store.read_block(self.vdi_uuid, index)
            self.send(data if length == BLOCK_SIZE else data[:length])
            return
        self.handler.wfile.flush()
        with open(path, "rb") as source:
            offset = index * BLOCK_SIZE
            left = length
            while left:
                count = os.sendfile(self.handler.connection.fileno(), source.fileno(), offset, left)
                if count == 0:  # end of the sparse file: the rest of the block is a hole
                    self.handler.wfile.write(ZERO_BLOCK[:left])
                    break
                offset += count
                left -= count
        self.sent += length
