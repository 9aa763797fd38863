"""blktap's rules for one file, beyond what reading needs (docs/vhd.md §12.2).

``open_vhd`` refuses what could make a read wrong. blktap's ``vhd-util check`` (and libvhd when
it opens a file) refuses more: reserved bits and fields, feature flags, a footer or parent time
stamp in the future, a geometry larger than the size's, a dynamic disk with parent fields,
blocks before the end of the metadata, a batmap marking an unallocated block full. A file
failing one of those is one XCP-ng's tools will not accept, so ``check`` reports it.

Every problem here is ``fatal=False``: the file reads right. ``severity`` is ``error`` unless a
producer whose files xoweb must keep reading makes such files (then ``warning``, with the reason
in docs/vhd.md §12.3). Parent locators, which need the file system, are in ``locators.py``.
"""

from __future__ import annotations

import re
import struct
import time

from .fields import (
    CREATOR_TAP,
    DEFAULT_BLOCK_SIZE,
    NO_OFFSET,
    SECTOR,
    TAP_CREATOR_VERSION,
    UNUSED,
    DiskType,
    blktap_geometry,
    vhd_time,
)
from .footer import FOOTER_SIZE
from .header import PLATFORM_NAMES
from .vhdfile import ERROR, WARNING, Problem, VhdFile

#: blktap accepts time stamps this far ahead of its clock (NFS servers drift).
TIMESTAMP_SLACK = 1800
_SET_BIT = re.compile(b"[^\x00]")


def _problem(kind: str, message: str, severity: str = ERROR) -> Problem:
    return Problem(message, fatal=False, kind=kind, severity=severity)


def file_rules(vhd: VhdFile, now: float | None = None) -> list[Problem]:
    """Every blktap rule one opened, sound file breaks (``now`` is a unix time)."""
    clock = vhd_time(time.time() if now is None else now)
    found = footer_rules(vhd, clock)
    if vhd.header is not None:
        found += header_rules(vhd, clock)
        found += layout_rules(vhd)
        found += batmap_rules(vhd)
    return found


def _future(stamp: int, clock: int) -> int:
    """Seconds ``stamp`` lies beyond blktap's slack, or 0."""
    return max(0, stamp - clock - TIMESTAMP_SLACK)


def _encoded(geometry: tuple[int, int, int]) -> int:
    cylinders, heads, sectors = geometry
    return cylinders << 16 | heads << 8 | sectors


def footer_rules(vhd: VhdFile, clock: int) -> list[Problem]:
    raw, footer = vhd.footer_raw, vhd.footer
    found = []
    features = struct.unpack_from(">I", raw, 8)[0]
    if not features & 2:
        found.append(
            _problem(
                "footer",
                f"footer features are 0x{features:08x}: the 'reserved' bit 0x2 must be set "
                "(blktap: invalid 'reserved' feature)",
            )
        )
    if features & ~3:
        found.append(
            _problem(
                "footer",
                f"footer features are 0x{features:08x}: only temporary (0x1) and reserved "
                "(0x2) exist (blktap: invalid extra features)",
            )
        )
    if footer.disk_type == DiskType.FIXED and footer.data_offset != NO_OFFSET:
        found.append(
            _problem(
                "footer",
                f"footer data offset is 0x{footer.data_offset:x} in a fixed disk, expected "
                "0xffffffffffffffff (blktap: invalid data offset)",
            )
        )
    ahead = _future(footer.timestamp, clock)
    if ahead:
        found.append(
            _problem(
                "timestamp",
                f"footer time stamp {footer.timestamp} is {ahead + TIMESTAMP_SLACK} s ahead of "
                f"this host's clock (blktap allows {TIMESTAMP_SLACK} s: creation time in future)",
            )
        )
    if footer.creator_app == CREATOR_TAP and footer.creator_version > TAP_CREATOR_VERSION:
        found.append(
            _problem(
                "footer",
                f"footer creator 'tap' version 0x{footer.creator_version:08x} is newer than "
                "blktap's 1.3 (blktap: unsupported tap creator version)",
            )
        )
    largest = blktap_geometry(footer.current_size)
    if _encoded(footer.geometry) > _encoded(largest):
        found.append(
            _problem(
                "geometry",
                f"footer geometry {'/'.join(map(str, footer.geometry))} (cylinders/heads/"
                f"sectors) exceeds {'/'.join(map(str, largest))}, the geometry of "
                f"{footer.current_size} bytes (blktap: geometry too large; qemu-img's "
                "force_size writes this, and every reader here uses the current size)",
                WARNING,
            )
        )
    for name, value in (("saved state", footer.saved_state), ("hidden", footer.hidden)):
        if value not in (0, 1):
            found.append(
                _problem("footer", f"footer {name} is {value}, expected 0 or 1 (blktap refuses)")
            )
    if _SET_BIT.search(raw, 86, FOOTER_SIZE):
        found.append(
            _problem("footer", "footer reserved bytes 86..511 are not zero (blktap refuses)")
        )
    if footer.uuid.int == 0:
        found.append(_problem("footer", "footer UUID is zero (blktap: invalid (NULL) uuid)"))
    return found


def header_rules(vhd: VhdFile, clock: int) -> list[Problem]:
    raw, header = vhd.header_raw, vhd.header
    found = []
    if header.data_offset != NO_OFFSET:
        found.append(
            _problem(
                "header",
                f"header data offset is 0x{header.data_offset:x}, expected 0xffffffffffffffff "
                "(blktap: invalid data offset)",
            )
        )
    if struct.unpack_from(">I", raw, 60)[0] or _SET_BIT.search(raw, 768, 1024):
        found.append(
            _problem("header", "header reserved fields are not zero (blktap: invalid reserved)")
        )
    for slot in range(8):
        code = struct.unpack_from(">I", raw, 576 + 24 * slot)[0]
        if code and code not in PLATFORM_NAMES and code != 0x4D616320:
            found.append(
                _problem(
                    "header",
                    f"parent locator {slot} has platform code 0x{code:08x}, which no VHD tool "
                    "knows (blktap refuses to open the file)",
                )
            )
    if header.block_size != DEFAULT_BLOCK_SIZE:
        found.append(
            _problem(
                "block-size",
                f"block size is {header.block_size} bytes: blktap only handles 2 MiB blocks "
                "(it refuses larger ones and cannot read smaller ones, though its check passes "
                "them); XAPI and Xen Orchestra write 2 MiB",
                WARNING,
            )
        )
    if vhd.footer.disk_type == DiskType.DYNAMIC:
        present = [
            name
            for name, value in (
                ("parent UUID", header.parent_uuid.int),
                ("parent time stamp", header.parent_timestamp),
                ("parent name", _SET_BIT.search(raw, 64, 576)),
                ("parent locators", _SET_BIT.search(raw, 576, 768)),
            )
            if value
        ]
        if present:
            found.append(
                _problem(
                    "header",
                    f"dynamic disk has a non-null {', '.join(present)} (blktap: invalid non-null "
                    "parent fields)",
                )
            )
        return found
    ahead = _future(header.parent_timestamp, clock)
    if ahead:
        found.append(
            _problem(
                "timestamp",
                f"header parent time stamp {header.parent_timestamp} is "
                f"{ahead + TIMESTAMP_SLACK} s ahead of this host's clock (blktap allows "
                f"{TIMESTAMP_SLACK} s: parent creation time in future)",
            )
        )
    units = struct.unpack_from(">256H", raw, 64)
    if any(unit >= 0x80 for unit in units):
        found.append(
            _problem(
                "header",
                f"header parent name {header.parent_name!r} is not plain ASCII (blktap: invalid "
                "parent name)",
            )
        )
    return found


def end_of_metadata(vhd: VhdFile) -> tuple[int, str]:
    """Where blktap's metadata (header, BAT, batmap) ends, and what ends there."""
    header = vhd.header
    ends = [
        (vhd.footer.data_offset + 1024, "the dynamic header"),
        (header.table_offset + header.bat_bytes, "the BAT"),
    ]
    if vhd.batmap is not None:
        ends.append((vhd.batmap.end, "the batmap"))
    elif vhd.claims_batmap:
        ends.append((vhd.batmap_offset + SECTOR, "the batmap header"))
    return max(ends)


def layout_rules(vhd: VhdFile) -> list[Problem]:
    """Every block after the metadata: blktap's check ('block N clobbers headers')."""
    end, what = end_of_metadata(vhd)
    early = [index for offset, index in vhd.bat.by_offset() if offset < end]
    if not early:
        return []
    more = f" and {len(early) - 3} more" if len(early) > 3 else ""
    blocks = ", ".join(map(str, early[:3]))
    return [
        _problem(
            "bat",
            f"blocks {blocks}{more} lie before the end of {what} at offset {end}: blktap "
            f"requires every block after the metadata (blktap: block {early[0]} clobbers "
            "headers)",
        )
    ]


def batmap_rules(vhd: VhdFile) -> list[Problem]:
    """A batmap may under-claim but never mark a block the BAT does not have."""
    batmap = vhd.batmap
    if batmap is None:
        return []
    limit = min(vhd.block_count, len(batmap.bits) * 8)
    entries = vhd.bat.entries
    wrong = []
    for start in (match.start() for match in _SET_BIT.finditer(batmap.bits)):
        for index in range(start * 8, min(start * 8 + 8, limit)):
            if batmap.is_full(index) and entries[index] == UNUSED:
                wrong.append(index)
    if not wrong:
        return []
    return [
        _problem(
            "batmap",
            f"batmap at offset {batmap.offset} marks unallocated block {wrong[0]} full"
            + (f" ({len(wrong)} such blocks)" if len(wrong) > 1 else "")
            + " (blktap: batmap shows unallocated block full)",
        )
    ]
