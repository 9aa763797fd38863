"""``python -m backups.vhd``: inspect, check, read and merge VHD files from a shell.

    info FILE [--json]   fields and allocated blocks of one file
    check FILE [--json]  the file and its chain, with blktap's rules; one line per finding
    cat FILE [-o OUT]    raw content of the chain ending at FILE (stdout by default)
    merge FILE           fold FILE into its parent (resumes an interrupted merge)

Exit status: 0 success (``check``: no error, warnings allowed), 1 ``check`` found an error,
2 any other error (message on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .chain import open_chain
from .check import check_chain, errors
from .errors import VhdError
from .fields import unix_time
from .merge import merge
from .vhdfile import VhdFile, open_vhd


def say(text: str) -> None:
    """One line on standard output (the command's only output channel)."""
    sys.stdout.write(f"{text}\n")


def block_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 7]`` → ``"0-2, 7"``: allocation of a large disk on one line."""
    parts, start = [], None
    for position, index in enumerate(indices):
        if start is None:
            start = index
        following = indices[position + 1] if position + 1 < len(indices) else None
        if following != index + 1:
            parts.append(str(start) if start == index else f"{start}-{index}")
            start = None
    return ", ".join(parts) or "none"


def describe(vhd: VhdFile) -> dict:
    """The fields of a file as plain JSON-able values."""
    footer, header = vhd.footer, vhd.header
    info = {
        "path": str(vhd.path),
        "disk_type": footer.disk_type.name.lower(),
        "size": footer.current_size,
        "original_size": footer.original_size,
        "uuid": str(footer.uuid),
        "timestamp": footer.timestamp,
        "timestamp_unix": unix_time(footer.timestamp),
        "creator": footer.creator_app.decode("latin-1").rstrip("\0 "),
        "creator_version": f"0x{footer.creator_version:08x}",
        "geometry": list(footer.geometry),
        "hidden": footer.hidden,
        "file_size": vhd.file_size,
    }
    if header is not None:
        blocks = vhd.allocated_blocks()
        info |= {
            "block_size": header.block_size,
            "max_table_entries": header.max_table_entries,
            "table_offset": header.table_offset,
            "batmap": vhd.batmap is not None,
            "allocated_blocks": len(blocks),
            "blocks": blocks,
        }
    if header is not None and footer.disk_type.name == "DIFFERENCING":
        info |= {
            "parent_uuid": str(header.parent_uuid),
            "parent_timestamp": header.parent_timestamp,
            "parent_name": header.parent_name,
            "parent_locators": [
                {"platform": locator.platform, "path": path} for locator, path in vhd.locator_paths
            ],
        }
    return info


def cmd_info(args: argparse.Namespace) -> int:
    with open_vhd(args.file) as vhd:
        info = describe(vhd)
    if args.json:
        say(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if key == "blocks":
            value = block_ranges(value)
        elif key == "parent_locators":
            value = "; ".join(f"{item['platform']} {item['path']}" for item in value) or "none"
        say(f"{key:18} {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Steps: check the chain; print the findings (or JSON); say OK when no error."""
    findings = check_chain(args.file)
    failed = bool(errors(findings))
    layers = 0
    if not failed:
        with open_chain(args.file) as chain:
            layers = len(chain.layers)
    if args.json:
        report = {
            "path": str(args.file),
            "ok": not failed,
            "files": layers or None,
            "errors": len(errors(findings)),
            "warnings": len(findings) - len(errors(findings)),
            "findings": [finding.as_dict() for finding in findings],
        }
        say(json.dumps(report, indent=2))
        return 1 if failed else 0
    for finding in findings:
        say(finding)
    if failed:
        return 1
    warned = f" with {len(findings)} warnings" if findings else ""
    say(f"{args.file}: OK{warned} (chain of {layers} files)")
    return 0


def cmd_cat(args: argparse.Namespace) -> int:
    with open_chain(args.file) as chain:
        if args.output:
            with open(args.output, "wb") as out:
                for chunk in chain.iter_raw():
                    out.write(chunk)
        else:
            out = sys.stdout.buffer
            for chunk in chain.iter_raw():
                out.write(chunk)
            out.flush()
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    result = merge(args.file)
    verb = "resumed and merged" if result.resumed else "merged"
    say(f"{verb} {result.merged_blocks} blocks; the merged file is {result.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backups.vhd", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    info = commands.add_parser("info", help="fields and allocated blocks of one file")
    info.add_argument("file", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=cmd_info)
    check = commands.add_parser(
        "check", help="validate the file and its chain, blktap's rules included"
    )
    check.add_argument("file", type=Path)
    check.add_argument("--json", action="store_true", help="print the findings as JSON")
    check.set_defaults(run=cmd_check)
    cat = commands.add_parser("cat", help="raw content of the chain ending at FILE")
    cat.add_argument("file", type=Path)
    cat.add_argument("-o", "--output", type=Path, help="write here instead of stdout")
    cat.set_defaults(run=cmd_cat)
    merge_cmd = commands.add_parser("merge", help="fold FILE into its parent (resumable)")
    merge_cmd.add_argument("file", type=Path)
    merge_cmd.set_defaults(run=cmd_merge)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (VhdError, OSError) as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except BrokenPipeError:
        return 0
