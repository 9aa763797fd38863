"""``python -m backups.vhd`` through a subprocess, as operators and scripts run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import backups.vhd as vhd

from .vhdkit import FULL, W2KU, build_vhd

BS = 2 * 2**20
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backups.vhd", *args],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )


def chain(tmp_path: Path) -> tuple[Path, Path, bytes]:
    base = uuid.uuid4()
    vhd.write_vhd(
        tmp_path / "a.vhd", {0: (None, b"a" * BS), 2: (None, b"c" * BS)}, size=3 * BS, uuid=base
    )
    vhd.write_vhd(
        tmp_path / "b.vhd",
        {1: (None, b"b" * BS)},
        size=3 * BS,
        parent=vhd.ParentLink(base, "a.vhd"),
    )
    return tmp_path / "a.vhd", tmp_path / "b.vhd", b"a" * BS + b"b" * BS + b"c" * BS


def test_info_prints_fields_and_blocks(tmp_path):
    _a, b, _raw = chain(tmp_path)
    result = run("info", str(b))
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "disk_type          differencing" in text
    assert "blocks             1" in text
    assert "parent_name        a.vhd" in text
    info = json.loads(run("info", str(tmp_path / "a.vhd"), "--json").stdout)
    assert info["blocks"] == [0, 2] and info["size"] == 3 * BS and info["creator"] == "tap"


def test_check_ok_then_one_line_per_problem_and_exit_1(tmp_path):
    a, b, _raw = chain(tmp_path)
    result = run("check", str(b))
    assert result.returncode == 0
    assert result.stdout.decode() == f"{b}: OK (chain of 2 files)\n"
    with vhd.open_vhd(a) as file:
        bitmap_at = file.block_offset(0)
    with open(a, "r+b") as handle:
        handle.seek(bitmap_at + 3)  # a bitmap byte of a block the batmap marks full
        handle.write(b"\x00")
        handle.seek(10)  # the footer copy
        handle.write(b"\x07")
    result = run("check", str(b))
    assert result.returncode == 1
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{a}: footer copy at offset 0")
    assert lines[1].startswith(f"{a}: block 0: bitmap at offset")


def test_cat_writes_the_chain_raw(tmp_path):
    _a, b, raw = chain(tmp_path)
    assert run("cat", str(b), "-o", str(tmp_path / "out.raw")).returncode == 0
    assert (tmp_path / "out.raw").read_bytes() == raw
    assert run("cat", str(b)).stdout == raw


def test_merge_folds_the_file_into_its_parent(tmp_path):
    _a, b, raw = chain(tmp_path)
    result = run("merge", str(b))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"merged 1 blocks; the merged file is {b}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["b.vhd"]
    assert run("cat", str(b)).stdout == raw


def test_errors_go_to_stderr_with_exit_2(tmp_path):
    (tmp_path / "bad.vhd").write_bytes(bytes(1024))
    result = run("info", str(tmp_path / "bad.vhd"))
    assert result.returncode == 2
    assert result.stderr.decode().startswith(f"error: {tmp_path / 'bad.vhd'}: footer at offset")


def test_merge_resumes_an_interrupted_merge(tmp_path):
    base = uuid.uuid4()
    vhd.write_vhd(tmp_path / "a.vhd", {0: (None, b"a" * BS)}, size=3 * BS, uuid=base)
    vhd.write_vhd(
        tmp_path / "b.vhd",
        {i: (None, bytes([66 + i]) * BS) for i in range(3)},
        size=3 * BS,
        parent=vhd.ParentLink(base, "a.vhd"),
    )

    def interrupt(done, total):
        raise KeyboardInterrupt

    try:
        vhd.merge(tmp_path / "b.vhd", batch_bytes=1, progress=interrupt)
    except KeyboardInterrupt:
        pass
    assert (tmp_path / ".a.vhd.merge.json").exists()
    result = run("merge", str(tmp_path / "b.vhd"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == (
        f"resumed and merged 3 blocks; the merged file is {tmp_path / 'b.vhd'}\n"
    )
    assert run("cat", str(tmp_path / "b.vhd")).stdout == b"B" * BS + b"C" * BS + b"D" * BS


def xo_child_with_blank_w2ku(tmp_path: Path) -> Path:
    """A child as Xen Orchestra's stream() can leave it: its W2KU locator holds nothing."""
    base = uuid.uuid4()
    (tmp_path / "a.vhd").write_bytes(
        build_vhd(2 * BS, {0: (FULL, b"a" * BS)}, creator=b"xo  ", unique=base)
    )
    child = tmp_path / "b.vhd"
    child.write_bytes(
        build_vhd(
            2 * BS,
            {1: (FULL, b"b" * BS)},
            creator=b"xo  ",
            parent_uuid=base,
            parent_name="a.vhd",
            locators=[(W2KU, b"")],
        )
    )
    return child


def test_check_reports_a_blank_w2ku_as_a_warning_and_cat_still_reads(tmp_path):
    child = xo_child_with_blank_w2ku(tmp_path)
    warning = "parent locator 0 (W2ku) is blank: it holds no data (blktap: invalid data length)"
    result = run("check", str(child))
    assert result.returncode == 0, result.stdout
    assert result.stdout.decode().splitlines() == [
        f"{child}: warning: {warning}",
        f"{child}: OK with 1 warnings (chain of 2 files)",
    ]
    report = json.loads(run("check", str(child), "--json").stdout)
    assert report == {
        "path": str(child),
        "ok": True,
        "files": 2,
        "errors": 0,
        "warnings": 1,
        "findings": [
            {
                "path": str(child),
                "kind": "parent-locator",
                "severity": "warning",
                "message": warning,
            }
        ],
    }
    assert run("cat", str(child)).stdout == b"a" * BS + b"b" * BS


def test_check_json_reports_errors_with_their_kind_and_exit_1(tmp_path):
    path = tmp_path / "old.vhd"
    path.write_bytes(
        build_vhd(BS, {0: (FULL, b"o" * BS)}, creator=b"tap\0", table_offset=1536, batmap=False)
    )
    result = run("check", str(path), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["files"] is None and report["errors"] == 2
    assert [(f["kind"], f["severity"]) for f in report["findings"]] == [
        ("batmap", "error"),
        ("bat", "error"),
    ]
    assert report["findings"][0]["message"].startswith(
        "footer creator 'tap' version 1.3 promises blktap's batmap at offset 2048"
    )
    assert run("cat", str(path)).stdout == b"o" * BS  # an error for blktap, not for reading
