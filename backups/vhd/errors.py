"""Exceptions of the VHD library.

Every message names the file (or stream), the structure and the field at fault and what was
expected, so that an operator reading a log line knows which backup is broken and why.
"""

from __future__ import annotations


class VhdError(Exception):
    """Base class: anything the VHD library refuses to do."""


class VhdFormatError(VhdError):
    """A file or stream is not a valid VHD: bad cookie, checksum, offset, bitmap or size."""


class TruncatedError(VhdFormatError):
    """A file or stream ends before the structure it announces."""


class ChainError(VhdError):
    """A chain cannot be followed: missing parent, wrong parent UUID, loop, mismatched blocks."""


class MergeError(VhdError):
    """A merge cannot start or resume safely (its state does not match the files)."""
