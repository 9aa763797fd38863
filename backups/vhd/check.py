"""Full validation of a file and of its chain, reporting every problem found.

Where opening a file stops at the first fatal fault, ``check`` goes on and lists them all:
footer and header cookies and checksums, the footer copy, sizes, the BAT (every block inside
the file, none overlapping another structure), the batmap, each block's bitmap against the
batmap, parent locators, and along the chain each parent's UUID and block size. Each problem
names the file and says what is wrong in words an operator can act on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .chain import parent_candidates
from .errors import VhdError
from .fields import DiskType
from .mergestate import find_finalizing_merge
from .vhdfile import VhdFile, open_vhd


@dataclass(frozen=True)
class Finding:
    """One problem in one file."""

    path: Path
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def _inspect(path: Path) -> tuple[VhdFile | None, list[Finding]]:
    try:
        vhd = open_vhd(path, strict=False)
    except OSError as error:
        return None, [Finding(path, f"cannot be opened: {error.strerror or error}")]
    findings = [Finding(path, problem.message) for problem in vhd.problems]
    if vhd.fatal:
        vhd.close()
        return None, findings
    for index in vhd.allocated_blocks() if vhd.header else ():
        try:
            vhd.read_bitmap(index)
        except VhdError as error:
            findings.append(Finding(path, str(error).removeprefix(f"{path}: ")))
    return vhd, findings


def check_file(path: str | os.PathLike) -> list[Finding]:
    """Every problem of one file (an empty list means it is sound)."""
    vhd, findings = _inspect(Path(path))
    if vhd is not None:
        vhd.close()
    return findings


def check_chain(path: str | os.PathLike) -> list[Finding]:
    """Every problem of the file at ``path`` and of each of its ancestors, and of the links."""
    findings: list[Finding] = []
    seen: dict[str, Path] = {}
    merged_into = None
    current = Path(path)
    while True:
        vhd, found = _inspect(current)
        findings += found
        if vhd is None:
            return findings
        with vhd:
            real = os.path.realpath(current)
            if real in seen or (str(vhd.uuid) in seen and vhd.uuid != merged_into):
                findings.append(
                    Finding(
                        current,
                        f"loop in parents: this file (UUID {vhd.uuid}) is already in the chain",
                    )
                )
                return findings
            seen[real] = current
            seen[str(vhd.uuid)] = current
            if vhd.disk_type != DiskType.DIFFERENCING:
                return findings
            candidates = parent_candidates(vhd)
            existing = [candidate for candidate in candidates if candidate.is_file()]
            if not existing:
                tried = ", ".join(map(str, candidates)) or "no parent name in the header"
                findings.append(
                    Finding(current, f"parent {vhd.header.parent_uuid} not found (tried {tried})")
                )
                return findings
            parent_path = existing[0]
            try:
                with open_vhd(parent_path) as parent:
                    merge = find_finalizing_merge(parent_path, parent.uuid, vhd.header.parent_uuid)
                    if merge is not None:
                        merged_into = parent.uuid  # it carries a child's UUID: not a loop
                        findings.append(
                            Finding(
                                parent_path,
                                "an interrupted merge already gave this file the identity of "
                                f"{merge.children[-1]}; finish it with `python -m backups.vhd "
                                f"merge {parent_path.parent / merge.children[-1]}`",
                            )
                        )
                    elif parent.uuid != vhd.header.parent_uuid:
                        findings.append(
                            Finding(
                                current,
                                f"header names parent UUID {vhd.header.parent_uuid}, but "
                                f"{parent_path} has footer UUID {parent.uuid} (wrong parent)",
                            )
                        )
                    if parent.block_size != vhd.block_size:
                        findings.append(
                            Finding(
                                current,
                                f"block size {vhd.block_size} differs from parent "
                                f"{parent_path}'s {parent.block_size}",
                            )
                        )
            except VhdError:
                pass  # reported in detail when the parent itself is inspected next
            current = parent_path
