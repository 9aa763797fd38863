"""``python -m backups.vhd`` through a subprocess, as operators and scripts run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import backups.vhd as vhd

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
