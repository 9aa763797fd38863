"""Reading and validating the structures of a VHD file as it is opened (docs/vhd.md §2-§5).

Opening reads the footer (the one at the end is authoritative), the dynamic header, the BAT,
blktap's batmap and the parent locators, and checks that every block lies inside the file and
overlaps nothing else. A fault that could make a read wrong is ``fatal`` and stops the open
with a message naming the file, the structure and the field; faults that cannot (a footer copy
at offset 0 that differs, a locator payload outside the file, a batmap blktap would refuse) are
kept in ``problems`` for ``check``, with their kind and severity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .bat import Bat
from .batmap import (
    BATMAP_VERSION,
    BATMAP_VERSION_1_1,
    Batmap,
    batmap_checksum,
    describe_cookie,
    map_bytes,
    parse_batmap_header,
    whole_checksum,
)
from .fields import CREATOR_TAP, FOOTER_COOKIE, SECTOR, DiskType, ceil_div
from .footer import FOOTER_SIZE, Footer, footer_problems
from .header import HEADER_SIZE, Header, ParentLocator, header_problems

_MAX_LOCATOR_BYTES = 64 * 1024


#: Creator versions of blktap: 0.1 wrote little-endian bitmaps; 1.2 and later have a batmap.
TAP_VERSION_0_1 = 0x00000001
TAP_VERSION_1_1 = 0x00010001

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One fault found in a file (docs/vhd.md §10, §12).

    ``fatal`` faults could make a read wrong (opening refuses the file); ``kind`` names the
    structure or rule, ``severity`` is ``error`` or, for what blktap refuses but the file reads
    right and known writers produce, ``warning``.
    """

    message: str
    fatal: bool = True
    kind: str = "format"
    severity: str = ERROR


@dataclass(frozen=True)
class Region:
    """A byte range of the file that one structure owns."""

    start: int
    end: int
    what: str


class StructureLoader:
    """The loading half of ``VhdFile``: fills its structures and ``problems`` (``_load``)."""

    path: Path
    fd: int
    file_size: int
    footer: Footer | None
    footer_raw: bytes
    header: Header | None
    header_raw: bytes
    bat: Bat | None
    batmap: Batmap | None
    locator_paths: list[tuple[ParentLocator, str | None]]
    regions: list[Region]
    problems: list[Problem]

    def _problem(
        self, message: str, *, fatal: bool = True, kind: str = "format", severity: str = ERROR
    ) -> None:
        self.problems.append(Problem(message, fatal, kind, severity))

    @property
    def fatal(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.fatal]

    def _load(self) -> None:
        """Read and validate every structure, recording problems instead of raising."""
        if not self._load_footer():
            return
        if self.footer.disk_type == DiskType.FIXED:
            self._load_fixed()
            return
        if not self._load_header():
            return
        if not self._load_bat():
            return
        self._load_batmap()
        self._load_locators()
        self._check_regions()

    def _pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def _load_footer(self) -> bool:
        if self.file_size < FOOTER_SIZE:
            self._problem(
                f"file is {self.file_size} bytes, too short to hold a VHD footer", kind="truncated"
            )
            return False
        if self.file_size % SECTOR == SECTOR - 1:
            self._problem(
                f"file is {self.file_size} bytes, 511 more than whole sectors: a 511-byte "
                "footer (Virtual PC before 2004; blktap accepts it) or a file truncated by one "
                "byte, and backups.vhd reads neither",
                kind="short-footer",
            )
            return False
        end = self.file_size - FOOTER_SIZE
        raw = self._pread(FOOTER_SIZE, end)
        problems = footer_problems(raw)
        if problems:
            copy_ok = self.file_size >= 2 * FOOTER_SIZE and not footer_problems(
                self._pread(FOOTER_SIZE, 0)
            )
            hint = ""
            if copy_ok and raw[:8] != FOOTER_COOKIE:
                hint = (
                    "; the footer copy at offset 0 is valid, so the file is truncated "
                    "(or its end was overwritten)"
                )
            elif copy_ok:
                hint = "; the footer copy at offset 0 is valid"
            for problem in problems:
                self._problem(f"footer at offset {end}: {problem}{hint}", kind="footer")
            return False
        self.footer = Footer.unpack(raw)
        self.footer_raw = raw
        if (
            self.footer.creator_app == CREATOR_TAP
            and self.footer.creator_version == TAP_VERSION_0_1
        ):
            self._problem(
                f"footer creator is 'tap' version 0x{self.footer.creator_version:08x}: blktap's "
                "first files had little-endian bitmaps, which no tool reads any more (blktap "
                "refuses them too)",
                kind="footer",
            )
            return False
        if self.footer.disk_type != DiskType.FIXED:
            copy = self._pread(FOOTER_SIZE, 0)
            if copy != raw:
                self._problem(
                    _copy_difference(copy, self.footer, end), fatal=False, kind="footer-copy"
                )
        return True

    def _load_fixed(self) -> None:
        needed = self.footer.current_size + FOOTER_SIZE
        if self.file_size < needed:
            self._problem(
                f"fixed disk of {self.footer.current_size} bytes needs a file of {needed} bytes, "
                f"file is {self.file_size} bytes (truncated)",
                kind="truncated",
            )

    def _load_header(self) -> bool:
        offset = self.footer.data_offset
        if offset + HEADER_SIZE > self.file_size - FOOTER_SIZE:
            self._problem(
                f"dynamic header at offset {offset} (footer data offset) lies past the end of "
                f"the data ({self.file_size - FOOTER_SIZE} bytes)",
                kind="header",
            )
            return False
        raw = self._pread(HEADER_SIZE, offset)
        problems = header_problems(raw)
        for problem in problems:
            self._problem(f"header at offset {offset}: {problem}", kind="header")
        if problems:
            return False
        self.header = Header.unpack(raw)
        self.header_raw = raw
        self.regions.append(Region(0, FOOTER_SIZE, "footer copy"))
        self.regions.append(Region(offset, offset + HEADER_SIZE, "dynamic header"))
        if self.footer.disk_type == DiskType.DIFFERENCING and self.header.parent_uuid.int == 0:
            self._problem("header parent UUID is zero in a differencing disk", kind="header")
        return True

    def _load_bat(self) -> bool:
        header = self.header
        needed = ceil_div(self.footer.current_size, header.block_size)
        if header.max_table_entries < needed:
            self._problem(
                f"header max table entries is {header.max_table_entries}, but a disk of "
                f"{self.footer.current_size} bytes in blocks of {header.block_size} bytes "
                f"needs {needed}",
                kind="bat",
            )
            return False
        start, end = header.table_offset, header.table_offset + header.bat_bytes
        if end > self.file_size - FOOTER_SIZE:
            self._problem(
                f"BAT at offset {start} ({header.max_table_entries} entries, {end - start} "
                f"bytes) extends past the end of the data at {self.file_size - FOOTER_SIZE} "
                "(file truncated or header table offset / max table entries corrupted)",
                kind="truncated",
            )
            return False
        self.bat = Bat.unpack(self._pread(end - start, start), header.max_table_entries)
        self.regions.append(Region(start, end, "BAT"))
        return True

    @property
    def batmap_offset(self) -> int:
        """Where blktap looks for the batmap header: right after the BAT (docs/vhd.md §4.4)."""
        return self.header.table_offset + self.header.bat_bytes

    @property
    def claims_batmap(self) -> bool:
        """blktap's rule: creator ``tap`` version 1.2 or later has a batmap (§12.1)."""
        footer = self.footer
        return footer.creator_app == CREATOR_TAP and footer.creator_version >= BATMAP_VERSION

    def _load_batmap(self) -> None:
        """blktap's batmap, where the creator says there is one (tap 1.1 may have one)."""
        footer = self.footer
        probes = footer.creator_app == CREATOR_TAP and footer.creator_version == TAP_VERSION_1_1
        if not (self.claims_batmap or probes):
            return
        header_offset = self.batmap_offset
        data_end = self.file_size - FOOTER_SIZE
        raw = self._pread(SECTOR, header_offset) if header_offset + SECTOR <= data_end else b""
        parsed = parse_batmap_header(raw)
        if parsed is None:
            if self.claims_batmap:
                found = f"the cookie there is '{describe_cookie(raw)}'" if raw else "the data ends"
                self._batmap_problem(
                    f"footer creator 'tap' version {_version(footer.creator_version)} promises "
                    f"blktap's batmap at offset {header_offset}, right after the BAT, but {found}"
                    " (blktap: 'failed to get batmap header'; its check refuses the file)"
                )
            return
        offset, size, version, stored = parsed
        where = f"batmap header at offset {header_offset}"
        entries = self.header.max_table_entries
        fault = None
        if version not in (BATMAP_VERSION, BATMAP_VERSION_1_1):
            fault = f"batmap version is 0x{version:08x}, expected 0x00010002"
        elif size == 0 or size * SECTOR * 8 < entries:
            fault = f"batmap size is {size} sectors, too small for {entries} BAT entries"
        elif offset != header_offset + SECTOR:
            fault = f"batmap offset is {offset}, expected {header_offset + SECTOR}"
        elif offset + size * SECTOR > data_end:
            fault = "batmap extends past the end of the data (truncated)"
        if fault:
            self._batmap_problem(f"{where}: {fault}")
            return
        bits = self._pread(size * SECTOR, offset)
        computed = batmap_checksum(bits, footer.current_size, version)
        if computed != stored:
            if version != BATMAP_VERSION or stored != whole_checksum(bits):
                self._problem(
                    f"{where}: batmap checksum is 0x{stored:08x}, computed 0x{computed:08x} "
                    "(batmap corrupted)",
                    kind="batmap",
                )
                return
            # Written before xoweb followed blktap's sum: the bits are sound, blktap refuses.
            self._batmap_problem(
                f"{where}: batmap checksum 0x{stored:08x} sums all {len(bits)} bytes of bits; "
                f"blktap sums the first {map_bytes(footer.current_size)} for a disk of "
                f"{footer.current_size} bytes and expects 0x{computed:08x}"
            )
        self.batmap = Batmap(header_offset, bits, version)
        self.regions.append(Region(header_offset, offset + size * SECTOR, "batmap"))

    def _batmap_problem(self, message: str) -> None:
        """A batmap fault that cannot make a read wrong: without it, bitmaps decide alone."""
        self._problem(message, fatal=False, kind="batmap")

    def _load_locators(self) -> None:
        for slot, locator in enumerate(self.header.locators):
            length = min(locator.data_length, _MAX_LOCATOR_BYTES)
            start = locator.data_offset
            if not length:
                self.locator_paths.append((locator, None))
                continue
            if start + length > self.file_size - FOOTER_SIZE or start < SECTOR:
                self._problem(
                    f"parent locator {slot} ({locator.platform}) data at offset {start}, "
                    f"{length} bytes, lies outside the file",
                    fatal=False,
                    kind="parent-locator",
                    severity=WARNING,
                )
                self.locator_paths.append((locator, None))
                continue
            payload = self._pread(length, start)
            self.locator_paths.append((locator, locator.decode(payload)))
            space = max(locator.space_bytes, length)
            self.regions.append(
                Region(start, start + space, f"parent locator {slot} ({locator.platform})")
            )

    def _check_regions(self) -> None:
        """Every block inside the data area, and no two structures sharing a byte."""
        data_end = self.file_size - FOOTER_SIZE
        span = self.block_span
        regions = list(self.regions)
        for offset, index in self.bat.by_offset():
            if offset + span > data_end:
                self._problem(
                    f"block {index}: BAT entry points to offset {offset}, and its {span} bytes "
                    f"(bitmap + data) extend past the end of the data at {data_end} "
                    "(file truncated or BAT corrupted)",
                    kind="truncated",
                )
                continue
            regions.append(Region(offset, offset + span, f"block {index}"))
        regions.sort(key=lambda region: (region.start, region.end))
        furthest: Region | None = None
        for region in regions:
            if furthest is not None and region.start < furthest.end:
                # A locator payload (Xen Orchestra's stream() leaves stale offsets) is never
                # read as data: its overlap is reported, the file still reads right.
                locator = region.what.startswith("parent locator") or furthest.what.startswith(
                    "parent locator"
                )
                reason = (
                    "(stale locator offset; blktap refuses the file)"
                    if locator
                    else "(BAT or header corrupted)"
                )
                self._problem(
                    f"{region.what} at offset {region.start} overlaps {furthest.what} "
                    f"({furthest.start}..{furthest.end}) {reason}",
                    fatal=not locator,
                    kind="parent-locator" if locator else "bat",
                    severity=WARNING if locator else ERROR,
                )
            if furthest is None or region.end > furthest.end:
                furthest = region


def _version(value: int) -> str:
    return f"{value >> 16}.{value & 0xFFFF}"


def _copy_difference(copy: bytes, footer: Footer, end: int) -> str:
    problems = footer_problems(copy)
    if problems:
        return f"footer copy at offset 0: {problems[0]}"
    other = Footer.unpack(copy)
    fields = [
        name
        for name in footer.__dataclass_fields__
        if getattr(other, name) != getattr(footer, name)
    ]
    return (
        f"footer copy at offset 0 differs from the footer at offset {end} in "
        f"{', '.join(fields) or 'reserved bytes'}"
    )
