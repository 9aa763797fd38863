"""Two-file chains (a parent and a differencing child) as each producer lays them out.

Made with ``vhdkit.build_vhd`` (no backups.vhd code), one per scenario: the producer (XAPI's
``caml`` streams, blktap's ``tap`` with and without its batmap, qemu's ``qem2``, Windows'
``win ``), full or partial bitmaps where that producer makes them, a size that is or is not a
multiple of the 2 MiB block, and a child larger than its parent. ``test_interop.py`` merges
each and holds the result to blktap's rules; ``scripts/vhd-blktap-crosscheck`` builds the same
files for blktap's own ``vhd-util``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from pathlib import Path

from .vhdkit import FULL, MACX, W2KU, W2RU, build_vhd

BS = 2 * 1024 * 1024
SPB = BS // 512
SR_PATH = "/var/run/sr-mount/7d3c5b52-9c2a-4c46-a1b8-6a7f5e1c2d3e"


@dataclass(frozen=True)
class Producer:
    """How one writer lays out its files (docs/vhd.md §5)."""

    creator: bytes
    version: int | None = None
    table_offset: int = 1536
    batmap: bool = False
    partial: bool = True  # does it write partial bitmaps?
    geometry: tuple[int, int, int] | None = None


PRODUCERS = {
    "caml": Producer(b"caml", table_offset=2048, partial=False),
    "tap": Producer(b"tap\0", batmap=True),
    "tap-no-batmap": Producer(b"tap\0", batmap=False),
    "qemu": Producer(b"qem2", version=0x00050003, geometry=(65535, 16, 255)),
    "win": Producer(b"win ", version=0x000A0000),
}


@dataclass(frozen=True)
class Scenario:
    producer: str
    partial: bool
    odd: bool
    grow: bool = False

    @property
    def name(self) -> str:
        return "-".join(
            [
                self.producer,
                "partial" if self.partial else "full",
                "odd" if self.odd else "even",
                *(["grow"] if self.grow else []),
            ]
        )

    @property
    def size(self) -> int:
        return 5 * BS + 3 * 512 if self.odd else 6 * BS

    @property
    def parent_size(self) -> int:
        return 3 * BS + (1024 if self.odd else 0) if self.grow else self.size


def scenarios() -> list[Scenario]:
    """Every producer × bitmaps × size, and a growing child for each producer."""
    found = []
    for name, producer in PRODUCERS.items():
        for partial in (False, True) if producer.partial else (False,):
            found += [Scenario(name, partial, odd) for odd in (False, True)]
        found.append(Scenario(name, producer.partial, True, grow=True))
    return found


def _block(rng: random.Random) -> bytes:
    return rng.randbytes(4096) * (BS // 4096)


def _bitmap(rng: random.Random, partial: bool) -> bytes:
    """A full bitmap, or one with runs and single sectors set (bytes libvhdi misreads too)."""
    if not partial:
        return FULL
    raw = bytearray(rng.choice([0x00, 0x0F, 0x80, 0xAA, 0xFF]) for _ in range(SPB // 8))
    raw[0] = 0xF0
    return bytes(raw)


def _locators(producer: str) -> tuple[str, list[tuple[int, bytes]], bool]:
    """The child's parent name, its locators and whether it has XAPI's empty MacX entry."""
    if producer == "caml":
        return f"{SR_PATH}/parent.vhd", [], True
    if producer.startswith("tap"):  # vhd-util snapshot: MacX, W2KU, W2RU, relative
        return (
            "parent.vhd",
            [
                (MACX, b"file://./parent.vhd"),
                (W2KU, "./parent.vhd".encode("utf-16-le")),
                (W2RU, "./parent.vhd".encode("utf-16-le")),
            ],
            False,
        )
    if producer == "win":
        return (
            "parent.vhd",
            [
                (W2KU, "C:\\Backups\\parent.vhd".encode("utf-16-le")),
                (W2RU, ".\\parent.vhd".encode("utf-16-le")),
            ],
            False,
        )
    return "parent.vhd", [(W2RU, "parent.vhd".encode("utf-16-le"))], False


def build(directory: Path, scenario: Scenario, seed: int = 0) -> tuple[Path, Path]:
    """Write ``parent.vhd`` and ``child.vhd`` of ``scenario`` into ``directory``."""
    producer = PRODUCERS[scenario.producer]
    rng = random.Random(f"{scenario.name}/{seed}")
    parent_blocks = -(-scenario.parent_size // BS)
    child_blocks = -(-scenario.size // BS)
    layout = {
        "creator": producer.creator,
        "creator_version": producer.version,
        "table_offset": producer.table_offset,
        "batmap": producer.batmap,
        "geometry": producer.geometry,
    }
    parent_uuid = uuid.uuid4()
    parent = {
        index: (_bitmap(rng, scenario.partial and index == 0), _block(rng))
        for index in sorted({0, 1, parent_blocks - 1})
    }
    (directory / "parent.vhd").write_bytes(
        build_vhd(scenario.parent_size, parent, unique=parent_uuid, **layout)
    )
    child = {
        index: (_bitmap(rng, scenario.partial and index != 1), _block(rng))
        for index in sorted({0, 1, child_blocks - 1})
    }
    name, locators, macx = _locators(scenario.producer)
    (directory / "child.vhd").write_bytes(
        build_vhd(
            scenario.size,
            child,
            parent_uuid=parent_uuid,
            parent_name=name,
            macx_locator=macx,
            locators=locators,
            **layout,
        )
    )
    return directory / "parent.vhd", directory / "child.vhd"
