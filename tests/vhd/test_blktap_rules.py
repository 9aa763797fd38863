"""blktap's rules as ``check`` reports them: each one's kind, severity and message.

Every file here is first made sound by backups.vhd's writer (or vhdkit), then one field is
changed the way a faulty or foreign writer would. ``blktapkit.blktap_verdict`` (blktap's
``vhd-util check`` restated) must refuse every file ``check`` reports, and accept the sound
ones. Time stamps are compared with an injected clock, never the wall clock.
"""

from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

import backups.vhd as vhd
from backups.vhd.fields import checksum, vhd_time

from .blktapkit import blktap_verdict
from .histories import read_all
from .vhdkit import FULL, MACX, W2KU, W2RU, build_vhd

BS = 2 * 2**20
NOW = 1_800_000_000.0  # 2027-01-15: the clock every time stamp here is compared with
STAMP = vhd_time(NOW) - 3600


def dynamic(path: Path, **kwargs) -> Path:
    blocks = kwargs.pop("blocks", {0: (None, b"a" * BS), 2: (None, b"c" * BS)})
    vhd.write_vhd(path, blocks, size=kwargs.pop("size", 4 * BS), timestamp=STAMP, **kwargs)
    return path


def patch_footer(path: Path, offset: int, value: bytes) -> None:
    """Change footer bytes (both copies) and recompute the checksum, as a writer would."""
    raw = bytearray(path.read_bytes())
    for start in (0, len(raw) - 512):
        footer = raw[start : start + 512]
        footer[offset : offset + len(value)] = value
        struct.pack_into(">I", footer, 64, checksum(footer, 64))
        raw[start : start + 512] = footer
    path.write_bytes(raw)


def patch_header(path: Path, offset: int, value: bytes) -> None:
    raw = bytearray(path.read_bytes())
    header = raw[512:1536]
    header[offset : offset + len(value)] = value
    struct.pack_into(">I", header, 36, checksum(header, 36))
    raw[512:1536] = header
    path.write_bytes(raw)


def findings(path: Path, now: float = NOW) -> list[tuple[str, str, str]]:
    return [(f.kind, f.severity, f.message) for f in vhd.check_chain(path, now=now)]


def test_files_backups_vhd_writes_pass_check_and_blktap(tmp_path):
    """Dynamic, differencing with partial bitmaps, a stored stream, a synthetic full."""
    base = uuid.uuid4()
    full = dynamic(tmp_path / "full.vhd", uuid=base, size=5 * BS + 1024)
    half = b"\xff" * 256 + bytes(256)
    delta = dynamic(
        tmp_path / "delta.vhd",
        blocks={1: (half, b"b" * BS), 4: (None, b"x" * BS)},
        size=5 * BS + 1024,
        parent=vhd.ParentLink(base, full.name, STAMP),
    )
    xapi = build_vhd(3 * BS, {0: (FULL, b"s" * BS), 2: (FULL, b"t" * BS)}, creator=b"caml")
    stored = tmp_path / "stored.vhd"
    vhd.write_stream(vhd.parse_stream(_Body(xapi)), stored, uuid=uuid.uuid4(), timestamp=STAMP)
    synthetic = tmp_path / "synthetic.vhd"
    with vhd.open_chain(delta) as chain:
        synthetic.write_bytes(vhd.synthetic_vhd(chain).stream().read())
    for path in (full, delta, stored, synthetic):
        assert findings(path) == [], path.name
        assert blktap_verdict(path, NOW) is None, path.name
        with vhd.open_vhd(path) as file:
            assert (file.footer.creator_app, file.footer.creator_version) == (b"tap\0", 0x10003)
            assert file.batmap is not None
    with vhd.open_vhd(stored) as file:  # a whole-block stream: every block marked full
        assert file.batmap.is_full(0) and file.batmap.is_full(2)
    with vhd.open_vhd(delta) as file:  # only the block known full is marked
        assert not file.batmap.is_full(1) and file.batmap.is_full(4)


class _Body:
    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk


def test_a_tap_file_without_its_batmap_is_an_error_and_still_reads(tmp_path):
    path = tmp_path / "old.vhd"
    path.write_bytes(
        build_vhd(3 * BS, {1: (FULL, b"z" * BS)}, creator=b"tap\0", table_offset=1536, batmap=False)
    )
    assert findings(path) == [
        (
            "batmap",
            "error",
            "footer creator 'tap' version 1.3 promises blktap's batmap at offset 2048, right "
            "after the BAT, but the cookie there is '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff' "
            "(blktap: 'failed to get batmap header'; its check refuses the file)",
        ),
        (
            "bat",
            "error",
            "blocks 1 lie before the end of the batmap header at offset 2560: blktap requires "
            "every block after the metadata (blktap: block 1 clobbers headers)",
        ),
    ]
    assert blktap_verdict(path, NOW) == "error calculating end of metadata: -22"
    assert read_all(path) == bytes(BS) + b"z" * BS + bytes(BS)


def test_batmap_checksum_and_bits_follow_blktap_for_an_odd_size(tmp_path):
    """8 GiB + 2 MiB: blktap checksums 512 bytes of bits, the block 4096 bit lies beyond."""
    size = 8 * 2**30 + BS
    path = dynamic(
        tmp_path / "big.vhd", size=size, blocks={0: (None, b"0" * BS), 4096: (None, b"1" * BS)}
    )
    with vhd.open_vhd(path) as file:
        assert len(file.batmap.bits) == 1024
        assert file.batmap.is_full(0) and not file.batmap.is_full(4096)  # never over blktap's
        bits_at = file.batmap.offset
    assert findings(path) == [] and blktap_verdict(path, NOW) is None
    # A batmap checksummed over all its bits (xoweb before it followed blktap): still read.
    raw = bytearray(path.read_bytes())
    raw[bits_at + 512] = 0x80
    struct.pack_into(
        ">I", raw, bits_at - 512 + 24, ~sum(raw[bits_at : bits_at + 1024]) & 0xFFFFFFFF
    )
    path.write_bytes(raw)
    [(kind, severity, message)] = findings(path)
    assert (kind, severity) == ("batmap", "error")
    assert message.endswith(
        f"sums all 1024 bytes of bits; blktap sums the first 512 for a disk of {size} bytes "
        f"and expects 0x{~sum(raw[bits_at : bits_at + 512]) & 0xFFFFFFFF:08x}"
    )
    assert blktap_verdict(path, NOW) == "error calculating end of metadata: -22"
    with vhd.open_chain(path) as chain:
        assert chain.read(4096 * BS, 4) == b"1111"
        identity = chain.uuid
    # Its next merge rewrites the batmap blktap's way (and drops the bit it cannot sum).
    child = dynamic(
        tmp_path / "child.vhd",
        size=size,
        blocks={5: (None, b"5" * BS)},
        parent=vhd.ParentLink(identity, "big.vhd", STAMP),
    )
    vhd.merge(child)
    assert findings(child) == [] and blktap_verdict(child, NOW) is None
    with vhd.open_chain(child) as chain:
        assert chain.read(4096 * BS, 4) == b"1111" and chain.read(5 * BS, 2) == b"55"


def test_a_batmap_marking_an_unallocated_block_full(tmp_path):
    path = dynamic(tmp_path / "a.vhd")
    with vhd.open_vhd(path) as file:
        header_at = file.batmap.header_offset
    raw = bytearray(path.read_bytes())
    raw[header_at + 512] |= 0x10  # block 3: not in the BAT
    struct.pack_into(
        ">I", raw, header_at + 24, ~sum(raw[header_at + 512 : header_at + 1024]) & 0xFFFFFFFF
    )
    path.write_bytes(raw)
    assert findings(path) == [
        (
            "batmap",
            "error",
            f"batmap at offset {header_at + 512} marks unallocated block 3 full (blktap: batmap "
            "shows unallocated block full)",
        )
    ]
    assert blktap_verdict(path, NOW) == "batmap shows unallocated block 3 full"


FOOTER_CASES = [
    (
        8,
        b"\0\0\0\0",
        "footer",
        "footer features are 0x00000000: the 'reserved' bit 0x2 must be set (blktap: invalid "
        "'reserved' feature)",
    ),
    (
        8,
        b"\0\0\0\x06",
        "footer",
        "footer features are 0x00000006: only temporary (0x1) and reserved (0x2) exist "
        "(blktap: invalid extra features)",
    ),
    (
        32,
        b"\0\x01\0\x04",
        "footer",
        "footer creator 'tap' version 0x00010004 is newer than blktap's 1.3 (blktap: "
        "unsupported tap creator version)",
    ),
    (84, b"\x02", "footer", "footer saved state is 2, expected 0 or 1 (blktap refuses)"),
    (85, b"\x07", "footer", "footer hidden is 7, expected 0 or 1 (blktap refuses)"),
    (300, b"x", "footer", "footer reserved bytes 86..511 are not zero (blktap refuses)"),
    (68, bytes(16), "footer", "footer UUID is zero (blktap: invalid (NULL) uuid)"),
    (
        24,
        struct.pack(">I", vhd_time(NOW) + 7200),
        "timestamp",
        "footer time stamp {stamp} is 7200 s ahead of this host's clock (blktap allows 1800 s: "
        "creation time in future)",
    ),
]


@pytest.mark.parametrize(
    ("offset", "value", "kind", "message"), FOOTER_CASES, ids=[c[3][:40] for c in FOOTER_CASES]
)
def test_footer_rules(tmp_path, offset, value, kind, message):
    path = dynamic(tmp_path / "a.vhd")
    patch_footer(path, offset, value)
    stamp = vhd_time(NOW) + 7200
    assert findings(path) == [(kind, "error", message.format(stamp=stamp))]
    assert blktap_verdict(path, NOW).startswith("primary footer invalid")
    assert read_all(path)[:3] == b"aaa"  # none of them changes what is read


def test_a_stamp_within_blktaps_slack_is_fine(tmp_path):
    path = dynamic(tmp_path / "a.vhd")
    patch_footer(path, 24, struct.pack(">I", vhd_time(NOW) + 1800))
    assert findings(path) == [] and blktap_verdict(path, NOW) is None


def test_qemu_geometry_is_a_warning(tmp_path):
    path = dynamic(tmp_path / "a.vhd")
    patch_footer(path, 56, struct.pack(">HBB", 65535, 16, 255))
    assert findings(path) == [
        (
            "geometry",
            "warning",
            "footer geometry 65535/16/255 (cylinders/heads/sectors) exceeds 240/4/17, the "
            f"geometry of {4 * BS} bytes (blktap: geometry too large; qemu-img's force_size "
            "writes this, and every reader here uses the current size)",
        )
    ]
    assert blktap_verdict(path, NOW) == "primary footer invalid: geometry too large"


HEADER_CASES = [
    (
        8,
        b"\0" * 8,
        "header data offset is 0x0, expected 0xffffffffffffffff (blktap: invalid data offset)",
    ),
    (60, b"\0\0\0\x01", "header reserved fields are not zero (blktap: invalid reserved)"),
    (900, b"\x01", "header reserved fields are not zero (blktap: invalid reserved)"),
    (
        64,
        "p.vhd".encode("utf-16-be"),
        "dynamic disk has a non-null parent name (blktap: invalid non-null parent fields)",
    ),
    (
        40,
        b"\x01" * 16,
        "dynamic disk has a non-null parent UUID (blktap: invalid non-null parent fields)",
    ),
]


@pytest.mark.parametrize(
    ("offset", "value", "message"), HEADER_CASES, ids=[c[2][:40] for c in HEADER_CASES]
)
def test_header_rules(tmp_path, offset, value, message):
    path = dynamic(tmp_path / "a.vhd")
    patch_header(path, offset, value)
    assert findings(path) == [("header", "error", message)]
    assert blktap_verdict(path, NOW) is not None
    assert read_all(path)[:3] == b"aaa"


def test_differencing_header_rules(tmp_path):
    base = uuid.uuid4()
    dynamic(tmp_path / "p.vhd", uuid=base)
    child = dynamic(tmp_path / "c.vhd", blocks={}, parent=vhd.ParentLink(base, "p.vhd", STAMP))
    patch_header(child, 56, struct.pack(">I", vhd_time(NOW) + 4000))
    assert findings(child) == [
        (
            "timestamp",
            "error",
            f"header parent time stamp {vhd_time(NOW) + 4000} is 4000 s ahead of this host's "
            "clock (blktap allows 1800 s: parent creation time in future)",
        )
    ]
    assert blktap_verdict(child, NOW + 4000) is None  # a later clock accepts it
    patch_header(child, 576 + 24 * 5, b"ABCD")
    assert findings(child, now=NOW + 4000) == [
        (
            "header",
            "error",
            "parent locator 5 has platform code 0x41424344, which no VHD tool knows (blktap "
            "refuses to open the file)",
        )
    ]
    assert blktap_verdict(child, NOW + 4000) == "vhd_open: invalid parent locator code"


def test_a_non_ascii_parent_name_is_an_error(tmp_path):
    base = uuid.uuid4()
    dynamic(tmp_path / "père.vhd", uuid=base)
    child = dynamic(tmp_path / "c.vhd", blocks={}, parent=vhd.ParentLink(base, "père.vhd", STAMP))
    kinds = findings(child)
    assert kinds[0] == (
        "header",
        "error",
        "header parent name 'père.vhd' is not plain ASCII (blktap: invalid parent name)",
    )
    assert read_all(child)[:3] == b"aaa"


def test_block_sizes_other_than_2_mib_are_a_warning(tmp_path):
    path = tmp_path / "small.vhd"
    vhd.write_vhd(path, {0: (None, b"s" * 4096)}, size=8192, block_size=4096, timestamp=STAMP)
    assert findings(path) == [
        (
            "block-size",
            "warning",
            "block size is 4096 bytes: blktap only handles 2 MiB blocks (it refuses larger "
            "ones and cannot read smaller ones, though its check passes them); XAPI and Xen "
            "Orchestra write 2 MiB",
        )
    ]


def test_blocks_before_the_end_of_the_metadata(tmp_path):
    """A BAT moved past the blocks (what xoweb's merge did before it followed blktap)."""
    path = dynamic(tmp_path / "a.vhd")
    patch_footer(path, 28, b"caml" + struct.pack(">I", 1))  # no batmap expected
    raw = bytearray(path.read_bytes())
    footer, bat = raw[-512:], raw[1536:2048]
    moved = len(raw) - 512
    raw[-512:] = bat
    raw += footer
    path.write_bytes(raw)
    patch_header(path, 16, struct.pack(">Q", moved))
    assert findings(path) == [
        (
            "bat",
            "error",
            f"blocks 0, 2 lie before the end of the BAT at offset {moved + 512}: blktap "
            "requires every block after the metadata (blktap: block 0 clobbers headers)",
        )
    ]
    assert blktap_verdict(path, NOW) == "block 0 (offset 0x6) clobbers headers"
    assert read_all(path) == b"a" * BS + bytes(BS) + b"c" * BS + bytes(BS)


# -- parent locators: warnings, the chain reads through the header's parent name -----------


def xo_child(tmp_path: Path, locators, *, macx: bool = False, name: str = "p.vhd") -> Path:
    base = uuid.uuid4()
    (tmp_path / "p.vhd").write_bytes(
        build_vhd(2 * BS, {0: (FULL, b"p" * BS)}, creator=b"xo  ", unique=base)
    )
    child = tmp_path / "c.vhd"
    child.write_bytes(
        build_vhd(
            2 * BS,
            {1: (FULL, b"c" * BS)},
            creator=b"xo  ",
            parent_uuid=base,
            parent_name=name,
            locators=locators,
            macx_locator=macx,
        )
    )
    return child


LOCATOR_CASES = [
    (
        "blank W2KU",
        [(W2KU, b"")],
        "parent locator 0 (W2ku) is blank: it holds no data (blktap: invalid data length)",
    ),
    (
        "mismatched W2KU",
        [(W2KU, "other.vhd".encode("utf-16-le"))],
        "parent locator 0 (W2ku) names 'other.vhd', whose file name is not the header's parent "
        "name 'p.vhd' (blktap: parent locator name does not match header name)",
    ),
    (
        "W2KU of NULs",
        [(W2KU, bytes(8))],
        "parent locator 0 (W2ku) is blank (blktap: error reading parent locator)",
    ),
    (
        "missing file",
        [(W2KU, "C:\\Backups\\p.vhd".encode("utf-16-le"))],
        "parent locator 0 (W2ku) names '/Backups/p.vhd', which does not exist (blktap: error "
        "resolving it)",
    ),
    (
        "duplicate",
        [(W2RU, "p.vhd".encode("utf-16-le")), (W2RU, "p.vhd".encode("utf-16-le"))],
        "parent locator 1 (W2ru) repeats a platform code another entry uses (blktap: duplicate "
        "platform code)",
    ),
    (
        "MacX not a URL",
        [(MACX, b"p.vhd")],
        "parent locator 0 (MacX) holds no readable path (blktap: error reading parent locator)",
    ),
    (
        "no locator",
        [],
        "no parent locator names the parent (MacX, W2ru or W2ku): blktap cannot find it "
        "(blktap: could not find parent)",
    ),
]


@pytest.mark.parametrize(
    ("locators", "message"), [c[1:] for c in LOCATOR_CASES], ids=[c[0] for c in LOCATOR_CASES]
)
def test_locator_rules_are_warnings_and_the_chain_still_reads(tmp_path, locators, message):
    child = xo_child(tmp_path, locators)
    assert findings(child) == [("parent-locator", "warning", message)]
    assert blktap_verdict(child, NOW) is not None
    assert read_all(child) == b"p" * BS + b"c" * BS


def test_good_locators_and_xapis_empty_macx(tmp_path):
    child = xo_child(tmp_path, [(W2KU, "p.vhd".encode("utf-16-le")), (MACX, b"file://./p.vhd")])
    assert findings(child) == [] and blktap_verdict(child, NOW) is None
    child = xo_child(tmp_path, [], macx=True, name="/var/run/sr-mount/sr/p.vhd")
    assert findings(child) == [
        (
            "parent-locator",
            "warning",
            "parent locator 0 (MacX) is blank: it holds no data (blktap: invalid data length)",
        )
    ]
    assert read_all(child) == b"p" * BS + b"c" * BS


def test_a_locator_leading_to_another_vhd(tmp_path):
    """blktap tries an absolute path as given, then joined to the child's folder as text."""
    child = xo_child(tmp_path, [(W2KU, "/xoweb-elsewhere/p.vhd".encode("utf-16-le"))])
    target = tmp_path / "xoweb-elsewhere" / "p.vhd"
    target.parent.mkdir()
    vhd.write_vhd(target, {}, size=2 * BS, timestamp=STAMP)
    [(kind, severity, message)] = findings(child)
    assert (kind, severity) == ("parent-locator", "warning")
    assert message.startswith(f"parent locator 0 (W2ku) leads to {target}, whose UUID is ")
    assert message.endswith("(blktap: invalid parent uuid)")
    assert blktap_verdict(child, NOW).endswith("invalid parent uuid")
    assert read_all(child) == b"p" * BS + b"c" * BS


def test_errors_leaves_the_warnings_out(tmp_path):
    child = xo_child(tmp_path, [(W2KU, b"")])
    found = vhd.check_chain(child, now=NOW)
    assert [f.severity for f in found] == ["warning"] and vhd.errors(found) == []
    assert str(found[0]).startswith(f"{child}: warning: parent locator 0 (W2ku) is blank")
