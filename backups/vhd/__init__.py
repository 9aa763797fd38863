"""xoweb's VHD library: read, stream-parse, write, chain, merge and check VHD files.

Plain Python with no Django import. The public API (details in README.md):

* structures: ``Footer``, ``Header``, ``ParentLocator``, ``Bat``, ``Batmap``, ``DiskType``;
* one file: ``open_vhd(path) -> VhdFile`` (validated; ``read_block``, ``allocated_blocks``);
* export streams: ``parse_stream(body) -> VhdStream`` (forward only; ``.blocks()``);
* writing: ``VhdWriter`` / ``write_vhd`` / ``write_stream`` with a ``ParentLink`` identity;
  ``VhdLayout`` (the same bytes, planned without a file, for writing one stream to many);
* chains: ``open_chain(newest) -> Chain`` (``read``, ``iter_raw``, ``raw_stream``),
  ``synthetic_vhd(chain) -> SyntheticVhd`` (``size`` known before streaming);
* merging: ``merge(children)`` and ``resume_merges(directory)``, resumable;
* checking: ``check_file(path)`` / ``check_chain(path, checked=)`` → list of ``Finding`` (each with a
  ``kind`` and a ``severity``; ``errors(findings)`` keeps those that make a file unsound);
* errors: ``VhdError`` ⊃ ``VhdFormatError`` ⊃ ``TruncatedError``, ``ChainError``,
  ``MergeError``.
"""

from __future__ import annotations

from .bat import Bat
from .batmap import Batmap
from .chain import Chain, open_chain, parent_candidates
from .check import FileCheck, Finding, check_chain, check_file, check_one, errors
from .errors import ChainError, MergeError, TruncatedError, VhdError, VhdFormatError
from .fields import (
    DEFAULT_BLOCK_SIZE,
    MAX_DISK_SIZE,
    SECTOR,
    DiskType,
    chs_geometry,
    unix_time,
    vhd_time,
)
from .footer import Footer
from .header import Header, ParentLocator
from .merge import MergeResult, merge, resume_merges
from .stream import Block, VhdStream, parse_stream
from .synthetic import SyntheticVhd, synthetic_vhd
from .vhdfile import VhdFile, open_vhd
from .writer import ParentLink, VhdLayout, VhdWriter, WrittenVhd, write_stream, write_vhd

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "MAX_DISK_SIZE",
    "SECTOR",
    "Bat",
    "Batmap",
    "Block",
    "Chain",
    "ChainError",
    "DiskType",
    "FileCheck",
    "Finding",
    "Footer",
    "Header",
    "MergeError",
    "MergeResult",
    "ParentLink",
    "ParentLocator",
    "SyntheticVhd",
    "TruncatedError",
    "VhdError",
    "VhdFile",
    "VhdFormatError",
    "VhdLayout",
    "VhdStream",
    "VhdWriter",
    "WrittenVhd",
    "check_chain",
    "check_file",
    "check_one",
    "chs_geometry",
    "errors",
    "merge",
    "open_chain",
    "open_vhd",
    "parent_candidates",
    "parse_stream",
    "resume_merges",
    "synthetic_vhd",
    "unix_time",
    "vhd_time",
    "write_stream",
    "write_vhd",
]
