"""Footer, header, BAT and bitmap codecs: round trips, checksums and precise refusals."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backups.vhd import DiskType, Footer, Header, VhdFormatError, chs_geometry
from backups.vhd.bat import Bat
from backups.vhd.bitmap import from_mask, is_full, runs, to_mask
from backups.vhd.header import W2RU, ParentLocator

from .vhdkit import pack_footer


def test_footer_round_trip_and_independent_packer_agree():
    unique = uuid.uuid4()
    ours = Footer(DiskType.DYNAMIC, 10 * 2**30, unique, creator_app=b"caml", creator_version=1)
    parsed = Footer.parse(ours.pack(), "test")
    assert parsed.uuid == unique and parsed.current_size == 10 * 2**30
    theirs = Footer.parse(pack_footer(8392192, 4, unique), "independent")
    assert theirs.disk_type == DiskType.DIFFERENCING and theirs.creator_app == b"caml"


def test_footer_checksum_error_names_both_values():
    raw = bytearray(Footer(DiskType.DYNAMIC, 2**20, uuid.uuid4()).pack())
    raw[48] ^= 0x01
    with pytest.raises(VhdFormatError, match=r"x: footer checksum is 0x[0-9a-f]{8}, computed"):
        Footer.parse(bytes(raw), "x")


def test_footer_refuses_bad_cookie_type_and_size():
    good = Footer(DiskType.DYNAMIC, 2**20, uuid.uuid4())
    with pytest.raises(VhdFormatError, match="cookie is 'conectiy', expected 'conectix'"):
        Footer.parse(b"conectiy" + good.pack()[8:], "f")
    with pytest.raises(VhdFormatError, match="disk type is 5"):
        Footer.parse(good.replace(disk_type=5).pack(), "f")
    with pytest.raises(VhdFormatError, match="above the format's 2 TiB limit"):
        Footer.parse(good.replace(current_size=2**41 + 512).pack(), "f")


def test_chs_geometry_follows_the_spec_appendix():
    assert chs_geometry(8 * 2**20) == (240, 4, 17)
    assert chs_geometry(2 * 2**40)[1:] == (16, 255)
    # 266338304 sectors // 255 // 16 heads
    assert chs_geometry(127 * 2**30) == (65278, 16, 255)


def test_header_round_trip_with_parent_and_locators():
    header = Header(
        table_offset=1536,
        max_table_entries=1024 * 1024,
        parent_uuid=uuid.uuid4(),
        parent_timestamp=12345,
        parent_name="20260101T000000Z.vhd",
        locators=(ParentLocator(W2RU, 512, 40, 1536 + 4 * 2**20),),
    )
    parsed = Header.parse(header.pack(), "h")
    assert parsed == header
    raw = bytearray(header.pack())
    raw[100] ^= 0xFF
    with pytest.raises(VhdFormatError, match="h: header checksum is"):
        Header.parse(bytes(raw), "h")


def test_header_refuses_block_size_not_a_power_of_two():
    raw = Header(table_offset=1536, max_table_entries=4, block_size=3 * 2**20).pack()
    with pytest.raises(VhdFormatError, match="block size 3145728 is not a power of two"):
        Header.parse(raw, "h")


def test_bat_round_trip_pads_with_unused():
    bat = Bat.empty(130)
    bat.entries[0] = 3
    bat.entries[129] = 0xABCDEF
    packed = bat.pack()
    assert len(packed) == 1024
    again = Bat.unpack(packed, 130)
    assert again.allocated() == [0, 129] and again.get(129) == 0xABCDEF
    assert again.get(500) == 0xFFFFFFFF


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([8, 64, 4096]), st.data())
def test_bitmap_mask_runs_match_the_msb_first_rule(spb, data):
    raw = data.draw(st.binary(min_size=spb // 8, max_size=spb // 8))
    mask = to_mask(raw, spb)
    expected = [bool(raw[s >> 3] & (0x80 >> (s & 7))) for s in range(spb)]
    covered = [False] * spb
    for first, end in runs(mask, spb):
        covered[first:end] = [True] * (end - first)
    assert covered == expected
    assert from_mask(mask, spb)[: spb // 8] == raw
    assert is_full(from_mask(mask, spb), spb) == all(expected)
