"""Full validation of a file and of its chain, reporting every problem found.

Where opening a file stops at the first fatal fault, ``check`` goes on and lists them all:
footer and header cookies and checksums, the footer copy, sizes, the BAT (every block inside
the file, none overlapping another structure), the batmap, each block's bitmap against the
batmap, parent locators, and along the chain each parent's UUID and block size; then blktap's
own rules (``rules.py``, ``locators.py``), so that a file ``check`` passes is one XCP-ng's
``vhd-util check`` passes too (docs/vhd.md §10, §12). Each finding names the file, says what is
wrong in words an operator can act on, and carries its ``kind`` and ``severity``: an error
makes the file or chain unsound; a warning is something blktap refuses in a file that reads
right and that known writers (Xen Orchestra, XAPI, qemu-img) produce.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from .chain import parent_candidates
from .errors import VhdError
from .fields import DiskType
from .locators import locator_rules
from .mergestate import find_finalizing_merge
from .rules import file_rules
from .vhdfile import ERROR, WARNING, VhdFile, open_vhd

__all__ = [
    "ERROR",
    "WARNING",
    "FileCheck",
    "Finding",
    "check_chain",
    "check_file",
    "check_one",
    "errors",
]


@dataclass(frozen=True)
class Finding:
    """One problem in one file: what is wrong, which rule (``kind``) and how bad."""

    path: Path
    message: str
    kind: str = "format"
    severity: str = ERROR

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def __str__(self) -> str:
        label = "" if self.is_error else f"{self.severity}: "
        return f"{self.path}: {label}{self.message}"

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "severity": self.severity,
            "message": self.message,
        }


def errors(findings: list[Finding]) -> list[Finding]:
    """The findings that make a file or chain unsound (warnings left out)."""
    return [finding for finding in findings if finding.is_error]


def _inspect(path: Path, now: float | None) -> tuple[VhdFile | None, list[Finding]]:
    try:
        vhd = open_vhd(path, strict=False)
    except OSError as error:
        return None, [Finding(path, f"cannot be opened: {error.strerror or error}", "file")]
    findings = [
        Finding(path, problem.message, problem.kind, problem.severity) for problem in vhd.problems
    ]
    if vhd.fatal:
        vhd.close()
        return None, findings
    for index in vhd.allocated_blocks() if vhd.header else ():
        try:
            vhd.read_bitmap(index)
        except VhdError as error:
            findings.append(Finding(path, str(error).removeprefix(f"{path}: "), "bitmap"))
    findings += [
        Finding(path, problem.message, problem.kind, problem.severity)
        for problem in file_rules(vhd, now)
    ]
    return vhd, findings


def check_file(path: str | os.PathLike, *, now: float | None = None) -> list[Finding]:
    """Every problem of one file (an empty list means it is sound and blktap-valid).

    ``now`` (a unix time, default the clock) is what time stamps are compared with.
    """
    vhd, findings = _inspect(Path(path), now)
    if vhd is not None:
        vhd.close()
    return findings


@dataclass
class FileCheck:
    """What checking one file found, and its link to its parent (:func:`check_one`).

    ``own`` are the file's findings, ``link`` those of its link to its parent and of its parent
    locators; ``uuid`` is ``None`` when the file could not be read at all.
    """

    path: Path
    own: list[Finding]
    link: list[Finding]
    uuid: uuidlib.UUID | None = None
    differencing: bool = False
    parent: Path | None = None  # the parent file the header names, when it exists
    merging: object = None  # the UUID an interrupted merge gave that parent

    @property
    def findings(self) -> list[Finding]:
        return self.own + self.link


def check_one(path: str | os.PathLike, *, now: float | None = None) -> FileCheck:
    """Check one file and, for a differencing file, its link to its parent (not the parent)."""
    path = Path(path)
    vhd, own = _inspect(path, now)
    if vhd is None:
        return FileCheck(path, own, [])
    with vhd:
        if vhd.disk_type != DiskType.DIFFERENCING:
            return FileCheck(path, own, [], vhd.uuid)
        parent_path, link, merging = _check_link(vhd, path)
        link += [
            Finding(path, problem.message, problem.kind, problem.severity)
            for problem in locator_rules(vhd, parent_path)
        ]
        return FileCheck(path, own, link, vhd.uuid, True, parent_path, merging)


def check_chain(
    path: str | os.PathLike,
    *,
    now: float | None = None,
    checked: dict[Path, FileCheck] | None = None,
) -> list[Finding]:
    """Every problem of the file at ``path``, of each of its ancestors and of the links.

    ``checked`` (a dict kept by the caller) remembers each file's :class:`FileCheck`, so that
    checking many chains that share ancestors reads each file once (the backup engine's
    verification checks every backup of a remote this way).
    """
    checked = {} if checked is None else checked
    findings: list[Finding] = []
    seen: dict[str, Path] = {}
    merged_into = None
    current = Path(path)
    while True:
        result = checked.get(current)
        if result is None:
            result = checked[current] = check_one(current, now=now)
        findings += result.own
        if result.uuid is None:
            return findings
        real = os.path.realpath(current)
        if real in seen or (str(result.uuid) in seen and result.uuid != merged_into):
            findings.append(
                Finding(
                    current,
                    f"loop in parents: this file (UUID {result.uuid}) is already in the chain",
                    "parent",
                )
            )
            return findings
        seen[real] = current
        seen[str(result.uuid)] = current
        if not result.differencing:
            return findings
        findings += result.link
        if result.parent is None:
            return findings
        merged_into = result.merging or merged_into
        current = result.parent


def _check_link(vhd: VhdFile, current: Path) -> tuple[Path | None, list[Finding], object]:
    """The parent file the header names, what is wrong with the link to it, and the UUID
    an interrupted merge gave that parent (it is then no loop to meet it again)."""
    candidates = parent_candidates(vhd)
    existing = [candidate for candidate in candidates if candidate.is_file()]
    if not existing:
        tried = ", ".join(map(str, candidates)) or "no parent name in the header"
        message = f"parent {vhd.header.parent_uuid} not found (tried {tried})"
        return None, [Finding(current, message, "parent")], None
    parent_path = existing[0]
    findings = []
    merging = None
    try:
        with open_vhd(parent_path) as parent:
            merge = find_finalizing_merge(parent_path, parent.uuid, vhd.header.parent_uuid)
            if merge is not None:
                merging = parent.uuid
                findings.append(
                    Finding(
                        parent_path,
                        "an interrupted merge already gave this file the identity of "
                        f"{merge.children[-1]}; finish it with `python -m backups.vhd "
                        f"merge {parent_path.parent / merge.children[-1]}`",
                        "merge",
                    )
                )
            elif parent.uuid != vhd.header.parent_uuid:
                findings.append(
                    Finding(
                        current,
                        f"header names parent UUID {vhd.header.parent_uuid}, but "
                        f"{parent_path} has footer UUID {parent.uuid} (wrong parent)",
                        "parent",
                    )
                )
            if parent.block_size != vhd.block_size:
                findings.append(
                    Finding(
                        current,
                        f"block size {vhd.block_size} differs from parent "
                        f"{parent_path}'s {parent.block_size}",
                        "parent",
                    )
                )
    except VhdError:
        pass  # reported in detail when the parent itself is inspected next
    return parent_path, findings, merging
