"""blktap's ``vhd-util check -n FILE`` restated from its source, independent of backups.vhd.

``blktap_verdict(path)`` returns ``None`` when blktap's check would say "FILE is valid", else the
first message it would print. It follows ``vhd/lib/vhd-util-check.c`` and ``libvhd.c``
(xapi-project/blktap): footers, header, libvhd's 2 MiB block assumption, the batmap of ``tap``
1.2+ files (checksummed over ``size >> 24`` bytes), the end of the metadata every block must
follow, and the parent locators of a differencing file. It lets the suite hold merged files to
blktap's rules without blktap (docs/vhd.md §12); ``scripts/vhd-blktap-crosscheck`` runs the
real ``vhd-util`` for a developer who has built it.
"""

from __future__ import annotations

import itertools
import os
import struct
import time
from pathlib import Path, PurePosixPath

from .vhdkit import chs

BLOCK = 2 * 1024 * 1024
UNUSED = 0xFFFFFFFF
CODES = {0, 0x57693272, 0x5769326B, 0x57327275, 0x57326B75, 0x4D616320, 0x4D616358}
MACX, W2RU, W2KU = 0x4D616358, 0x57327275, 0x57326B75


def _sum(raw: bytes, at: int) -> int:
    return ~(sum(raw) - sum(raw[at : at + 4])) & 0xFFFFFFFF


def _footer(raw: bytes, now: float) -> str | None:
    if raw[:8] != b"conectix":
        return "invalid cookie"
    if struct.unpack_from(">I", raw, 64)[0] != _sum(raw, 64):
        return "invalid checksum"
    features, version, data_offset, stamp = struct.unpack_from(">IIQI", raw, 8)
    creator, creator_version = raw[28:31], struct.unpack_from(">I", raw, 32)[0]
    size = struct.unpack_from(">Q", raw, 48)[0]
    cylinders, heads, sectors, kind = struct.unpack_from(">HBBI", raw, 56)
    if not features & 2:
        return "invalid 'reserved' feature"
    if features & ~3:
        return "invalid extra features"
    if version != 0x00010000:
        return "invalid file format version"
    if kind not in (3, 4) and data_offset != 2**64 - 1:
        return "invalid data offset"
    if stamp > int(now) - 946684800 + 1800:
        return "creation time in future"
    if creator == b"tap" and creator_version > 0x00010003:
        return "unsupported tap creator version"
    c, h, s = chs(512 * ((((size + 511) >> 9) & 0xFFFFFFFF) or 1))  # libvhd: 32-bit sectors
    if (cylinders << 16 | heads << 8 | sectors) > (c << 16 | h << 8 | s):
        return "geometry too large"
    if kind not in (2, 3, 4):
        return "invalid type"
    if raw[84] > 1 or raw[85] > 1:
        return "invalid 'saved' or 'hidden' state"
    if any(raw[86:512]) or not any(raw[68:84]):
        return "invalid 'reserved' bits or (NULL) uuid"
    return None


def _path(code: int, payload: bytes) -> str | None:
    try:
        text = payload.decode("utf-8" if code == MACX else "utf-16-le")
    except UnicodeDecodeError:
        return None
    if not text.isascii():
        return None
    text = text.split("\0")[0]
    if code == MACX:
        return text[7:] if text.startswith("file://") else None
    text = text.replace("\\", "/")
    return text[2:] if text[:2].lower() == "c:" else text


def _locator_size(space: int) -> int:
    return space * 512 if space < 512 else (space if space % 512 == 0 else 0)


def blktap_verdict(path: Path, now: float | None = None) -> str | None:
    """The first complaint of ``vhd-util check -n path``, or None when it passes."""
    now = time.time() if now is None else now
    raw = Path(path).read_bytes()
    eof = len(raw)
    footer = raw[-512:]
    problem = _footer(footer, now)
    if problem:
        return f"primary footer invalid: {problem}"
    kind, size = struct.unpack_from(">I", footer, 60)[0], struct.unpack_from(">Q", footer, 48)[0]
    if kind == 2:
        return None
    problem = _footer(raw[:512], now)
    if problem:
        return f"backup footer invalid: {problem}"
    if raw[:512] != footer:
        return "primary and backup footers do not match"
    data_offset = struct.unpack_from(">Q", footer, 16)[0]
    header = raw[data_offset : data_offset + 1024]
    if header[:8] != b"cxsparse" or struct.unpack_from(">I", header, 36)[0] != _sum(header, 36):
        return "header is invalid: cookie or checksum"
    hdr_offset, table, version, entries, block_size = struct.unpack_from(">QQIII", header, 8)
    if version != 0x00010000 or hdr_offset != 2**64 - 1:
        return "header is invalid: version or data offset"
    if not table or table % 512 or table + entries * 4 > eof - 512:
        return "header is invalid: invalid table offset"
    if block_size & (block_size - 1) or block_size > BLOCK:
        return "header is invalid: invalid block size"
    if any(header[60:64]) or any(header[768:1024]):
        return "header is invalid: invalid reserved bits"
    locs = [struct.unpack_from(">IIIIQ", header, 576 + 24 * i) for i in range(8)]
    if any(loc[0] not in CODES for loc in locs):
        return "vhd_open: invalid parent locator code"
    units = struct.unpack_from(">256H", header, 64)
    if kind == 3 and (any(header[40:576]) or any(header[576:768])):
        return "differencing header is invalid: invalid non-null parent fields"
    if kind == 4 and (any(unit >= 0x80 for unit in units)):
        return "differencing header is invalid: invalid parent name"
    spb = block_size // 512
    bitmap_secs = max(1, -(-(spb // 8) // 512))
    blocks = -(-size // BLOCK)  # libvhd reads the BAT as if blocks were 2 MiB
    if entries < blocks:
        return "error reading bat"
    bat = struct.unpack_from(f">{blocks}I", raw, table)
    eoh = max(data_offset + 1024, table + -(-entries * 4 // 512) * 512)
    creator, creator_version = footer[28:31], struct.unpack_from(">I", footer, 32)[0]
    batmap = None
    if creator == b"tap" and creator_version >= 0x00010002:
        at = table + -(-entries * 4 // 512) * 512
        head = raw[at : at + 512]
        if head[:8] != b"tdbatmap":
            return "error calculating end of metadata: -22"
        offset, secs, map_version, checksum = struct.unpack_from(">QIII", head, 8)
        covered = max(1, -(-(size >> 24) // 512)) * 512
        bits = raw[offset : offset + covered]
        if map_version > 0x00010002 or checksum != ~sum(bits) & 0xFFFFFFFF:
            return "error calculating end of metadata: -22"
        if not secs or secs * 4096 < entries or offset % 512 or offset + secs * 512 > eof - 512:
            return "batmap is invalid"
        eoh = max(eoh, at + 512, offset + secs * 512)
        batmap = raw[offset : offset + secs * 512]  # libvhd tests bits past what it summed
    for code, space, _length, _res, offset in locs:
        if code:
            eoh = max(eoh, offset + _locator_size(space))
    span = (spb + bitmap_secs) * 512
    starts = sorted(offset * 512 for offset in bat[: size >> 21] if offset != UNUSED)
    for index, offset in enumerate(bat[: size >> 21]):
        if offset == UNUSED:
            continue
        if offset * 512 < eoh:
            return f"block {index} (offset 0x{offset:x}) clobbers headers"
        if offset * 512 + span > eof - 512:
            return f"block {index} (offset 0x{offset:x}) clobbers footer"
    if any(later - earlier < span for earlier, later in itertools.pairwise(starts)):
        return "a block clobbers another block"
    if batmap is not None:
        for index in range(size >> 21):
            if batmap[index >> 3] & (0x80 >> (index & 7)) and bat[index] == UNUSED:
                return f"batmap shows unallocated block {index} full"
    if kind == 4:
        return _locators(Path(path), raw, header, locs)
    return None


def _locators(path: Path, raw: bytes, header: bytes, locs: list) -> str | None:
    """vhd_util_check_parent_locators: every entry valid, names the header's, resolves."""
    text = header[64:576].decode("utf-16-be").split("\0")[0].replace("\\", "/")
    pname = text[2:] if text[:2].lower() == "c:" else text
    parent_uuid, seen, found = header[40:56], set(), 0
    for number, (code, space, length, res, offset) in enumerate(locs):
        if not code:
            if space or length or res or offset:
                return f"invalid parent locator {number}: non-zero locator"
            continue
        if not offset or not space or not length:
            return f"invalid parent locator {number}: offset, space or length"
        if not _locator_size(space) or offset + _locator_size(space) > len(raw) - 512 or res:
            return f"invalid parent locator {number}: invalid size"
        if code in seen:
            return f"duplicate platform code in locator {number}"
        seen.add(code)
        if code not in (MACX, W2RU, W2KU):
            continue
        parent = _path(code, raw[offset : offset + length])
        if parent is None:
            return f"error reading parent locator {number}"
        if PurePosixPath(parent).name != pname:
            return f"parent locator {number} name does not match header name"
        options = ([Path(parent)] if parent.startswith("/") else []) + [
            Path(f"{path.parent}/{parent}")
        ]
        target = next((option for option in options if os.access(option, os.R_OK)), None)
        if target is None:
            return f"error resolving {parent}"
        with open(target, "rb") as handle:
            handle.seek(-512, os.SEEK_END)
            other = handle.read(512)[68:84]
        if other != parent_uuid:
            return f"invalid parent {target}: invalid parent uuid"
        found += 1
    return None if found else f"could not find parent {pname}"
