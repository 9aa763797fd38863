"""One disk's export, written to every remote at once (docs/backup-engine.md §4).

``GET /export_raw_vdi?format=vhd[&base=]`` → ``backups.vhd.parse_stream`` → one ``VhdLayout``
with our identity (footer UUID = the snapshot VDI's uuid, parent = the base's, one relative
locator) → the same bytes to a temporary file on each remote, SHA-256 computed once on the way.
A reader thread parses the next block while the current one is hashed and written, so the
export, the hash and the disks overlap; at most two blocks are in memory whatever the disk
size, and each remote has one block in flight.

A remote that fails is dropped (its temporary file removed) and the others go on; the transfer
fails when none is left. The body alone is no success signal (docs/xapi.md §9.2): every file is
complete and flushed, then the export's XAPI task must say success, and only then is each file
validated and renamed to its real name.
"""

from __future__ import annotations

import hashlib
import socket
import time
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from backups import vhd
from pools.xapi import XapiClient, XapiConnectionError, XapiError

from .errors import EngineError, RemoteError, TransferFailed
from .progress import Progress
from .readahead import read_ahead
from .remote import AtomicFile, RemoteAdapter

EXPORT_TIMEOUT = 300.0  # seconds without a byte before the export is given up


@dataclass(frozen=True)
class DiskTarget:
    remote: RemoteAdapter
    relpath: str  # of the .vhd, from the remote's root


@dataclass
class DiskTransfer:
    bytes: int = 0
    sha256: str = ""
    duration: float = 0.0
    files: dict[str, str] = field(default_factory=dict)  # remote id → relpath
    failed: dict[str, str] = field(default_factory=dict)  # remote id → why


class _Writers:
    """The open temporary files, one per remote still in the race."""

    def __init__(self, targets: Sequence[DiskTarget], result: DiskTransfer, layout: vhd.VhdLayout):
        self.result = result
        self.files: dict[str, tuple[DiskTarget, AtomicFile]] = {}

        def validate(path: Path) -> None:
            size = path.stat().st_size
            if size != layout.file_size:
                raise vhd.VhdFormatError(f"{path}: {size} bytes, expected {layout.file_size}")
            vhd.open_vhd(path).close()

        for target in targets:
            try:
                handle = target.remote.atomic_file(target.relpath, validate)
            except RemoteError as error:
                self.drop(target.remote.remote_id, str(error))
                continue
            self.files[target.remote.remote_id] = (target, handle)
        self._check_left()

    def drop(self, remote_id: str, why: str) -> None:
        entry = self.files.pop(remote_id, None)
        if entry is not None:
            entry[1].abort()
        self.result.failed[remote_id] = why

    def _check_left(self) -> None:
        if not self.files:
            raise TransferFailed(
                "no remote could store the disk: "
                + "; ".join(self.result.failed.values() or ["no remote given"])
            )

    def write(self, *chunks: bytes | memoryview) -> None:
        for remote_id, (_target, handle) in list(self.files.items()):
            try:
                handle.write(*chunks)
            except RemoteError as error:
                self.drop(remote_id, str(error))
        self._check_left()

    def flush(self) -> None:
        for remote_id, (_target, handle) in list(self.files.items()):
            try:
                handle.flush()
            except RemoteError as error:
                self.drop(remote_id, str(error))
        self._check_left()

    def commit(self) -> None:
        for remote_id, (target, handle) in list(self.files.items()):
            try:
                handle.commit()
            except (RemoteError, vhd.VhdError) as error:
                self.drop(remote_id, f"{target.remote}: {error}")
                continue
            self.result.files[remote_id] = target.relpath
        self._check_left()

    def abort(self) -> None:
        for _target, handle in self.files.values():
            handle.abort()
        self.files.clear()


def transfer_disk(
    client: XapiClient,
    *,
    vdi_ref: str,
    vdi_uuid: str,
    base: tuple[str, vhd.ParentLink] | None,
    targets: Sequence[DiskTarget],
    progress: Progress,
    label: str,
    timeout: float = EXPORT_TIMEOUT,
) -> DiskTransfer:
    """Export snapshot VDI ``vdi_ref`` (a delta on ``base`` = (base VDI ref, parent link) or a
    full) into ``targets``.

    Steps: start the export tied to a task of ours; parse up to the BAT; plan the file; open a
    temporary file per remote; write prefix, blocks and footer to each (dropping a remote that
    fails), hashing once; flush every file; wait for the export task's success; validate and
    rename each file.
    """
    started = time.monotonic()
    result = DiskTransfer()
    query = {"vdi": vdi_ref, "format": "vhd"}
    if base is not None:
        query["base"] = base[0]
    try:
        export = client.export_stream(
            "/export_raw_vdi", query, label=f"xoweb export of {label}", timeout=timeout
        )
    except XapiError as error:
        raise TransferFailed(f"the pool refused the export of {label}: {error}") from None
    writers: _Writers | None = None
    settled = False
    stream_name = f"the export of {label}"
    try:
        stream = vhd.parse_stream(export.response, stream_name)
        differencing = stream.footer.disk_type == vhd.DiskType.DIFFERENCING
        if differencing != (base is not None):
            raise TransferFailed(
                f"the export of {label} is {'a delta' if differencing else 'a full'}, "
                f"but {'a delta' if base else 'a full'} was asked for"
            )
        layout = vhd.VhdLayout(
            size=stream.footer.current_size,
            blocks=stream.block_order,
            uuid=uuidlib.UUID(vdi_uuid),
            parent=base[1] if base else None,
            block_size=stream.block_size,
            whole_blocks=stream.whole_blocks,
            name=label,
        )
        progress.update(done=0, total=layout.file_size)
        writers = _Writers(targets, result, layout)
        hasher = hashlib.sha256()
        hasher.update(layout.prefix)
        writers.write(layout.prefix)
        progress.advance(len(layout.prefix))
        # While the export sends nothing, look for a cancel anyway; stopping closes the
        # export's connection, so that a read blocked on it returns (task.cancel does not stop
        # an export: docs/xapi.md §8.7).
        blocks = read_ahead(
            stream.blocks(), idle=progress.check, wake=lambda: _interrupt(export.response)
        )
        try:
            for position, block in enumerate(blocks):
                bitmap = layout.block_bitmap(position, block.index, block.bitmap, block.data)
                hasher.update(bitmap)
                hasher.update(block.data)
                writers.write(bitmap, block.data)
                progress.advance(layout.span)
        except BaseException:
            _interrupt(export.response)  # so that the reader thread's recv returns
            raise
        finally:
            blocks.close()
        hasher.update(layout.footer_bytes)
        writers.write(layout.footer_bytes)
        progress.advance(len(layout.footer_bytes))
        writers.flush()
        settled = True
        try:
            export.finish(timeout=timeout)
        except XapiError as error:
            raise TransferFailed(
                f"the pool reports that the export of {label} failed: {error}"
            ) from None
        writers.commit()
    except (vhd.VhdError, OSError) as error:
        detail = str(error).removeprefix(f"{stream_name}: ")
        raise TransferFailed(
            f"the export of {label} did not arrive whole: {detail}{_task_error(client, export)}"
        ) from None
    except EngineError:
        raise
    finally:
        if writers is not None and not result.files:
            writers.abort()
        if not settled:
            # Closing the connection is how a transfer is stopped (task.cancel does not).
            _interrupt(export.response)
            client.destroy_task(export.task_ref)
    result.bytes = layout.file_size
    result.sha256 = hasher.hexdigest()
    result.duration = time.monotonic() - started
    return result


def _interrupt(response) -> None:
    """Close the export's connection, waking a thread blocked reading it."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    response.close()


def _task_error(client: XapiClient, export, wait: float = 2.0) -> str:
    """What the export's task says once it failed (a cut export fails it a moment later)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            record = client.call("task.get_record", export.task_ref, timeout=5)
        except XapiConnectionError as error:
            return f" (and the pool no longer answers: {error})"
        except XapiError:
            return ""
        if record.get("status") == "failure":
            return f" (the pool says: {' '.join(record.get('error_info') or [])})"
        if record.get("status") != "pending" or time.monotonic() > deadline:
            return ""
        time.sleep(0.1)
