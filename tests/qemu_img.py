"""qemu-img's `vpc` driver as an independent VHD writer and reader for the tests of both the
VHD tool and the simulator: files it makes and reads owe nothing to our code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def write_vhd(raw: Path, vhd: Path, subformat: str = "dynamic") -> None:
    """Write the raw image `raw` as a `dynamic` or `fixed` VHD at `vhd`, keeping its exact size
    (force_size) rather than rounding it to a CHS geometry."""
    subprocess.run(
        [
            "qemu-img",
            "convert",
            "-f",
            "raw",
            "-O",
            "vpc",
            "-o",
            f"subformat={subformat},force_size=on",
            str(raw),
            str(vhd),
        ],
        check=True,
    )


def read_vhd(vhd: Path, raw: Path) -> bytes:
    """The content of the VHD `vhd` as qemu-img reads it, written to `raw` on the way."""
    subprocess.run(
        ["qemu-img", "convert", "-f", "vpc", "-O", "raw", str(vhd), str(raw)], check=True
    )
    return raw.read_bytes()


def virtual_size(vhd: Path) -> int:
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(vhd)], check=True, capture_output=True
    )
    return json.loads(info.stdout)["virtual-size"]
