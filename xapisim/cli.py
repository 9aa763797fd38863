"""Command line: `python -m xapisim --host 127.0.0.1 --port PORT --data DIR [--vms N]
[--disk-size SIZE] [--hosts N] [--tls] [--password PW] [--sr-size SIZE] [--api-version X.Y.Z]
[--coalesce-delay SECONDS]`.

Steps: load the pool from DIR (or seed a new one from the options) → listen, the coordinator on
PORT and member i on PORT+i → print exactly one ready line with the URL → serve until SIGTERM or
SIGINT, then save the state and exit 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from .api.control import parse_size
from .api.registry import parse_version
from .pool import API_VERSION, COALESCE_DELAY, Simulator
from .server import HostServer

MAX_PORT = 65535


class _OneLineParser(argparse.ArgumentParser):
    """Errors in one line that names the option (no usage block above it), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message.removeprefix('argument ')}\n")


def _whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{value} is not between {minimum} and {maximum}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _OneLineParser(
        prog="python -m xapisim", description="A simulated XCP-ng pool over XAPI."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (loopback only by default)"
    )
    parser.add_argument(
        "--port",
        type=_whole_number(0, MAX_PORT),
        required=True,
        help="coordinator port (0: any free port); members use PORT+1, PORT+2, …",
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="state directory (survives restarts)"
    )
    parser.add_argument(
        "--vms", type=_whole_number(0, 100_000), default=4, help="VMs of a new pool (default 4)"
    )
    parser.add_argument(
        "--disk-size", default="1G", help="first-disk size of a new pool's VMs (default 1G)"
    )
    parser.add_argument(
        "--hosts", type=_whole_number(1, 1000), default=1, help="hosts of a new pool (default 1)"
    )
    parser.add_argument("--tls", action="store_true", help="HTTPS with a self-signed certificate")
    parser.add_argument("--password", default="xapisim", help="root's password (default xapisim)")
    parser.add_argument(
        "--sr-size",
        type=_size,
        default=None,
        help="physical size of a new pool's shared and local SRs (default 4T and 512G)",
    )
    parser.add_argument(
        "--api-version",
        type=_version,
        default=API_VERSION,
        help="answer as this xapi release; below 21.4.0 VM.snapshot has no ignore_vdis "
        "(default 25.6.0)",
    )
    parser.add_argument(
        "--coalesce-delay",
        type=float,
        default=COALESCE_DELAY,
        help=f"seconds from a VDI.destroy to the SM's coalesce; negative: only sim.coalesce "
        f"(default {COALESCE_DELAY:g})",
    )
    args = parser.parse_args(argv)
    try:
        args.disk_size_bytes = parse_size(args.disk_size)
    except ValueError as error:
        parser.error(f"--disk-size: {error}")
    if args.port and args.port + args.hosts - 1 > MAX_PORT:
        parser.error(
            f"--port: {args.hosts} hosts listen on PORT to PORT+{args.hosts - 1}, and "
            f"{args.port + args.hosts - 1} is past {MAX_PORT}: give a lower --port"
        )
    if args.data.exists() and not args.data.is_dir():
        parser.error(f"--data: {args.data} exists and is not a directory")
    try:
        args.data.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"--data: cannot create {args.data}: {error.strerror}")
    return args


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _version(text: str) -> tuple[int, ...]:
    try:
        return parse_version(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sim = Simulator(
        args.data,
        listen_host=args.host,
        port=args.port,
        hosts=args.hosts,
        vms=args.vms,
        disk_size=args.disk_size_bytes,
        tls=args.tls,
        password=args.password,
        sr_size=args.sr_size,
        api_version=args.api_version,
        coalesce_delay=args.coalesce_delay,
    )
    context = None
    if args.tls:
        from .tls import server_context  # cryptography is slow to import; only --tls needs it

        context = server_context(args.data / "tls", args.host)
    ports = []
    for number, host in enumerate(sim.hosts):
        port = args.port + number if args.port else 0
        server = HostServer(sim, host, args.host, port, context)
        try:
            ports.append(server.listen())
        except OSError as error:
            sys.stderr.write(f"xapisim: cannot listen on {args.host}:{port}: {error.strerror}\n")
            return 2
        sim.servers[host] = server
    sim.assign_ports(ports)
    sim.start_background()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    pool = sim.db.tables["pool"][sim.pool_ref]["name_label"]
    vms = sum(
        1
        for r in sim.db.tables["VM"].values()
        if not (r["is_a_template"] or r["is_control_domain"] or r["is_a_snapshot"])
    )
    sys.stdout.write(
        f'xapisim ready at {sim.url(sim.master_ref)} (pool "{pool}", {vms} VMs, {len(sim.hosts)} hosts)\n'
    )
    sys.stdout.flush()
    done.wait()
    sim.shutdown()
    return 0
