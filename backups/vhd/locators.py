"""blktap's rules for a differencing file's parent locators (docs/vhd.md §12.3).

blktap never reads the header's parent name to find a parent: ``vhd-util check`` validates all
eight locator entries, decodes every ``MacX``, ``W2ru`` and ``W2ku`` path as it does (ASCII
only, backslashes as slashes, a ``C:`` dropped, ``file://`` required for ``MacX``), wants each
path's file name to equal the header's parent name, resolves it (as given when absolute and
present, else next to the child) and opens what it finds to compare UUIDs; tapdisk opens the
parent through the first locator that resolves. xoweb reads through the header's parent name
and UUID (§7), so a locator problem never changes what a chain reads — and Xen Orchestra writes
such files (``VhdAbstract.stream()`` packs the header before it moves the locator payloads;
older ``chain()`` keeps XAPI's empty ``MacX`` locator). Every finding here is therefore a
warning of kind ``parent-locator``: the file reads right here, but XCP-ng's tools refuse it.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path, PurePosixPath

from .errors import VhdError
from .header import MACX, PLATFORM_NAMES, W2KU, W2RU
from .vhdfile import WARNING, Problem, VhdFile, footer_uuid

_PATH_CODES = (MACX, W2RU, W2KU)
_MAC = 0x4D616320
_KIND = "parent-locator"


def _warning(slot: int, name: str, message: str) -> Problem:
    return Problem(f"parent locator {slot} ({name}) {message}", False, _KIND, WARNING)


def _ascii(raw: bytes, codec: str) -> str | None:
    """``raw`` decoded and required to be ASCII, as blktap's iconv to ASCII does."""
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        return None
    if not text.isascii():
        return None
    return text.split("\0", 1)[0]


def blktap_path(code: int, payload: bytes) -> str | None:
    """The path blktap reads from a locator payload, or None where it fails to decode."""
    if code == MACX:
        text = _ascii(payload, "utf-8")
        if text is None or not text.startswith("file://"):
            return None
        return text[len("file://") :]
    return _unix(_ascii(payload, "utf-16-le"))


def header_name(vhd: VhdFile) -> str | None:
    """The header's parent name as blktap decodes it (None if it is not ASCII)."""
    return _unix(_ascii(vhd.header_raw[64:576], "utf-16-be"))


def _unix(text: str | None) -> str | None:
    """blktap's reading of a Windows path: slashes for backslashes, no ``C:`` drive."""
    if text is None:
        return None
    text = text.replace("\\", "/")
    return text[2:] if text[:2] in ("C:", "c:") else text


def _space(data_space: int) -> int:
    """libvhd's ``vhd_parent_locator_size``: sectors below 512, else bytes (whole sectors)."""
    if data_space < 512:
        return data_space * 512
    return data_space if data_space % 512 == 0 else 0


def locator_rules(vhd: VhdFile, parent: Path | None) -> list[Problem]:
    """Warnings for every locator blktap's check would refuse (``parent``: the file found).

    Steps: validate each of the eight entries; decode the path-bearing ones; compare each
    path's file name with the header's parent name; resolve it and, when it leads elsewhere
    than ``parent``, compare that file's UUID with the one the header names.
    """
    raw = vhd.header_raw
    pname = header_name(vhd)
    data_end = vhd.file_size - 512
    found: list[Problem] = []
    seen: set[int] = set()
    usable = 0
    for slot in range(8):
        code, space, length, reserved, offset = struct.unpack_from(">IIIIQ", raw, 576 + 24 * slot)
        name = PLATFORM_NAMES.get(code, "Mac " if code == _MAC else f"0x{code:08x}")
        if not code:
            if space or length or reserved or offset:
                found.append(
                    _warning(slot, "unused", "has non-zero fields (blktap: non-zero locator)")
                )
            continue
        if code not in PLATFORM_NAMES and code != _MAC:
            continue  # an unknown code is a header error (rules.py)
        fault = None
        if not offset:
            fault = "has data offset 0 (blktap: invalid data offset)"
        elif not space:
            fault = "has data space 0 (blktap: invalid data space)"
        elif not length:
            fault = "is blank: it holds no data (blktap: invalid data length)"
        elif not _space(space) or offset + _space(space) > data_end:
            fault = (
                f"data at offset {offset} ({_space(space)} bytes reserved) lies outside the "
                "file (blktap: invalid size)"
            )
        elif reserved:
            fault = "has a non-zero reserved field (blktap: invalid reserved bits)"
        elif code in seen:
            fault = "repeats a platform code another entry uses (blktap: duplicate platform code)"
        seen.add(code)
        if fault:
            found.append(_warning(slot, name, fault))
            continue
        if code not in _PATH_CODES:
            continue
        usable += 1
        payload = os.pread(vhd.fd, min(length, 64 * 1024), offset)
        path = blktap_path(code, payload)
        if not path:
            what = "is blank" if path == "" else "holds no readable path"
            found.append(_warning(slot, name, f"{what} (blktap: error reading parent locator)"))
            continue
        file_name = PurePosixPath(path).name
        if pname is not None and file_name != pname:
            found.append(
                _warning(
                    slot,
                    name,
                    f"names {path!r}, whose file name is not the header's parent name {pname!r} "
                    "(blktap: parent locator name does not match header name)",
                )
            )
            continue
        found += _resolution(vhd, slot, name, path, parent)
    if not usable and not found:
        found.append(
            Problem(
                "no parent locator names the parent (MacX, W2ru or W2ku): blktap cannot find "
                "it (blktap: could not find parent)",
                False,
                _KIND,
                WARNING,
            )
        )
    return found


def _resolution(vhd: VhdFile, slot: int, name: str, path: str, parent: Path | None) -> list:
    """libvhd's ``vhd_find_parent``: absolute and present, else next to the child."""
    candidates = [Path(path)] if path.startswith("/") else []
    candidates.append(Path(f"{vhd.path.parent}/{path}"))  # joined as text, even when absolute
    target = next((candidate for candidate in candidates if candidate.is_file()), None)
    if target is None:
        return [
            _warning(
                slot, name, f"names {path!r}, which does not exist (blktap: error resolving it)"
            )
        ]
    if parent is None or os.path.realpath(target) == os.path.realpath(parent):
        return []
    try:
        other = footer_uuid(target)
    except (OSError, VhdError):
        other = None
    if other == vhd.header.parent_uuid:
        return []
    return [
        _warning(
            slot,
            name,
            f"leads to {target}, whose UUID is {other}, not the parent's "
            f"{vhd.header.parent_uuid} (blktap: invalid parent uuid)",
        )
    ]
