"""What a verification found (docs/verification.md §1): the report ``verify.py`` fills.

A :class:`FileReport` per VHD file (its own errors, its link to its parent, what a deep check
found in its bytes: :class:`Content`), a :class:`BackupReport` per metadata file (its own
problems and its disks' chains), both in one :class:`VerifyReport`, which says which backups
fail: a backup fails when it or any file of its chains does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Content(StrEnum):
    """What a deep check found in a file's bytes."""

    OK = "ok"  # the SHA-256 is the metadata's
    MISMATCH = "mismatch"  # it is not: the file changed after it was written
    NO_CHECKSUM = "no-checksum"  # no metadata recorded one (Xen Orchestra's backups)
    UNCHECKED = "unchecked"  # not read (a check without --deep)
    UNREADABLE = "unreadable"  # reading it failed


@dataclass
class FileReport:
    """One VHD file: its own errors and its link to its parent, and (deep) its content."""

    path: str  # relative to the remote's root
    size: int = 0
    mtime_ns: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    parent: str = ""  # the parent file its header names (a differencing file)
    sha256: str = ""  # computed (deep)
    expected_sha256: str = ""  # recorded by the metadata that names the file
    expected_by: str = ""  # that metadata
    content: Content = Content.UNCHECKED
    content_problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.content not in (Content.MISMATCH, Content.UNREADABLE)

    @property
    def problems(self) -> list[str]:
        return [*self.errors, *([self.content_problem] if self.content_problem else [])]


@dataclass
class BackupReport:
    """One backup (metadata file): its own problems and each disk's chain, newest first."""

    path: str
    vm_uuid: str
    timestamp: str
    vm_name: str = ""
    problems: list[str] = field(default_factory=list)  # the metadata, a missing file
    chains: dict[str, list[str]] = field(default_factory=dict)  # source vdi uuid → files

    @property
    def files(self) -> list[str]:
        seen: dict[str, None] = {}
        for chain in self.chains.values():
            seen.update(dict.fromkeys(chain))
        return list(seen)


@dataclass
class VerifyReport:
    remote_id: str
    remote_name: str
    deep: bool
    vms: list[str] = field(default_factory=list)  # the VM folders checked
    skipped: dict[str, str] = field(default_factory=dict)  # vm uuid → why it was not checked
    backups: list[BackupReport] = field(default_factory=list)
    files: dict[str, FileReport] = field(default_factory=dict)
    bytes_read: int = 0
    duration: float = 0.0
    #: Problems of files the caller knows from earlier checks, by path (a check that did not
    #: read a file keeps what a deep one found in it): counted like the check's own.
    earlier: dict[str, list[str]] = field(default_factory=dict)

    def problems(self, backup: BackupReport) -> list[str]:
        """Everything that makes ``backup`` fail: its own problems, then each file of its
        chains (and what ``earlier`` knows of it)."""
        found = list(backup.problems)
        for path in backup.files:
            report = self.files.get(path)
            found += report.problems if report is not None else []
            found += self.earlier.get(path, [])
        return list(dict.fromkeys(found))

    def ok(self, backup: BackupReport) -> bool:
        return not self.problems(backup)

    @property
    def failed(self) -> list[BackupReport]:
        return [backup for backup in self.backups if not self.ok(backup)]
