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
from pathlib import Path

from .api.control import parse_size
from .api.registry import parse_version
from .pool import API_VERSION, COALESCE_DELAY, Simulator
from .server import HostServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m xapisim", description="A simulated XCP-ng pool over XAPI."
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (loopback only by default)"
    )
    parser.add_argument(
        "--port", type=int, required=True, help="coordinator port; members use PORT+1, PORT+2, …"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="state directory (survives restarts)"
    )
    parser.add_argument("--vms", type=int, default=4, help="VMs of a new pool (default 4)")
    parser.add_argument(
        "--disk-size", default="1G", help="first-disk size of a new pool's VMs (default 1G)"
    )
    parser.add_argument("--hosts", type=int, default=1, help="hosts of a new pool (default 1)")
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
    if args.vms < 0 or args.hosts < 1:
        parser.error("--vms must be >= 0 and --hosts >= 1")
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
    args.data.mkdir(parents=True, exist_ok=True)
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
