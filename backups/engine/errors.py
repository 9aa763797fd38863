"""The engine's errors: each message says what failed and what a person can do about it.

``EngineError`` is the root. The Django side shows ``str(error)`` as it is; a
:class:`ChainUnhealthy` turns a VM backup *skipped* rather than *failed*.
"""

from __future__ import annotations


class EngineError(Exception):
    """Something the backup engine could not do; ``str()`` is a sentence for a person."""


class RemoteError(EngineError):
    """A remote's files could not be read or written; the message names the remote, the
    path and the operating system's reason."""

    def __init__(self, message: str, *, remote_id: str = "", remote_name: str = "") -> None:
        super().__init__(message)
        self.remote_id = remote_id
        self.remote_name = remote_name


class MetadataError(EngineError):
    """A backup's metadata file is not what XO's format 2.0.0 says (field named)."""


class LockHeld(EngineError):
    """Another live process holds the VM's folder on a remote (its lease is being renewed)."""


class LockLost(EngineError):
    """Our lock was broken by someone else (we stopped renewing it in time): stop writing."""


class SnapshotFailed(EngineError):
    """The pool refused or failed to snapshot the VM or one of its disks."""


class ChainUnhealthy(EngineError):
    """The VDI chain on the SR has not coalesced yet; snapshotting again would lengthen it.
    The VM backup is *skipped* (a protection), not failed."""


class NothingToBackUp(EngineError):
    """Every disk of the VM is excluded ([NOBAK]) or it has none: *skipped*, like XO's
    "no disks found"."""


class TransferFailed(EngineError):
    """A disk's export did not arrive whole, or no remote could store it."""


class RestoreError(EngineError):
    """A restore could not be done; nothing it created is left behind."""
