"""Export throughput of xapisim, against baselines measured in the same run.

Usage: python benchmarks/bench_xapisim_export.py [--size 2G] [--scale-vms 10000]

Steps: start `python -m xapisim` on a free port → create a VDI of SIZE and fill every block with
random bytes through `PUT /import_raw_vdi` → time `cat` of the same bytes to /dev/null (best of
2, page cache warm) → time `GET /export_raw_vdi?format=raw` and `format=vhd` (best of 2, body read
by curl into /dev/null, or by http.client without curl) → print throughputs and the ratios raw/cat and vhd/raw.

Goals (issue 3 asked for the ratios; these bounds were set by issue 10 from its measurements):
the raw export keeps at least 0.15 of `cat`'s throughput from the page cache, so the simulator is
never what limits xoweb's own transfer benchmarks; the VHD export keeps at least 0.8 of the raw
export's (the same bound as parsing a stream against a plain copy, issue 4).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

sys.path.insert(0, str(REPO / "benchmarks"))

import XenAPI  # noqa: E402
from goals import at_least, summary  # noqa: E402

from xapisim.api.control import parse_size  # noqa: E402

CHUNK = 1024 * 1024


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_simulator(data: Path, port: int, vms: int = 1) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xapisim",
            "--port",
            str(port),
            "--data",
            str(data),
            "--vms",
            str(vms),
            "--disk-size",
            "64M",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if "ready at" not in line:
        process.kill()
        raise SystemExit(f"xapisim did not start: {line!r}")
    return process


def write_random_file(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        left = size
        while left:
            piece = min(left, 16 * CHUNK)
            handle.write(os.urandom(piece))
            left -= piece


def upload(port: int, session: str, vdi: str, path: Path, size: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.putrequest("PUT", f"/import_raw_vdi?session_id={session}&vdi={vdi}&format=raw")
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    with open(path, "rb") as handle:
        while piece := handle.read(16 * CHUNK):
            conn.send(piece)
    response = conn.getresponse()
    task = response.headers["task-id"]
    response.read()
    conn.close()
    return task


def time_export(port: int, session: str, vdi: str, fmt: str) -> tuple[float, int]:
    """Seconds and bytes of one export, read by curl (a C client, so the number is the
    server's) or, without curl, by http.client."""
    url = f"http://127.0.0.1:{port}/export_raw_vdi?session_id={session}&vdi={vdi}&format={fmt}"
    if shutil.which("curl"):
        began = time.perf_counter()
        done = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", url],
            capture_output=True,
            text=True,
            check=True,
        )
        return time.perf_counter() - began, int(done.stdout)
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", f"/export_raw_vdi?session_id={session}&vdi={vdi}&format={fmt}")
    response = conn.getresponse()
    total = 0
    while piece := response.read(CHUNK):
        total += len(piece)
    conn.close()
    return time.perf_counter() - began, total


def time_cat(path: Path) -> float:
    began = time.perf_counter()
    subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - began


def xml_call(port: int, method: str, *params: object) -> tuple[float, bytes]:
    body = xmlrpc.client.dumps(params, method).encode()
    began = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("POST", "/", body=body, headers={"Content-Type": "text/xml"})
    answer = conn.getresponse().read()
    conn.close()
    return time.perf_counter() - began, answer


def scale(vms: int) -> None:
    """Start an N-VM pool; time VM.get_all_records (best of 3) and the first event.from."""
    with tempfile.TemporaryDirectory(prefix="bench-xapisim-scale-") as scratch:
        port = free_port()
        began = time.perf_counter()
        process = start_simulator(Path(scratch) / "data", port, vms)
        started = time.perf_counter() - began
        try:
            session = XenAPI.Session(f"http://127.0.0.1:{port}/")
            session.login_with_password("root", "xapisim", "1.0", "bench")
            time.sleep(2)  # the background record encoder, as in a long-lived pool
            records = min(xml_call(port, "VM.get_all_records", session.handle) for _ in range(3))
            seconds, answer = xml_call(port, "event.from", session.handle, ["*"], "", 5.0)
            events = answer.count(b"<name>operation</name>")
            session.logout()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(120)
    print(f"pool of {vms} VMs: ready in {started:.2f} s")
    print(
        f"VM.get_all_records     {records[0]:7.3f} s  ({len(records[1]) / 1024 / 1024:.0f} MiB of XML)"
    )
    print(
        f"first event.from       {seconds:7.3f} s  {events} events, {events / seconds:,.0f} events/s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="2G", help="disk size (default 2G)")
    parser.add_argument(
        "--scale-vms", type=int, default=0, help="also measure a pool of this many VMs"
    )
    args = parser.parse_args()
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(prefix="bench-xapisim-") as scratch:
        scratch_path = Path(scratch)
        source = scratch_path / "disk.raw"
        write_random_file(source, size)
        port = free_port()
        process = start_simulator(scratch_path / "data", port)
        try:
            session = XenAPI.Session(f"http://127.0.0.1:{port}/")
            session.login_with_password("root", "xapisim", "1.0", "bench")
            x = session.xenapi
            sr = x.pool.get_default_SR(x.pool.get_all()[0])
            vdi = session.xenapi.sim.vdi_create(sr, "bench", str(size))
            task = upload(port, session.handle, vdi, source, size)
            while x.task.get_status(task) == "pending":
                time.sleep(0.05)
            assert x.task.get_status(task) == "success", x.task.get_error_info(task)
            cat = min(time_cat(source) for _ in range(2))
            raw, raw_bytes = min(time_export(port, session.handle, vdi, "raw") for _ in range(2))
            vhd, vhd_bytes = min(time_export(port, session.handle, vdi, "vhd") for _ in range(2))
            session.logout()
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    assert raw_bytes == size, (raw_bytes, size)
    mib = 1024 * 1024
    print(f"disk size              {size / mib:.0f} MiB (every block written)")
    print(f"cat > /dev/null        {cat:7.3f} s  {size / mib / cat:8.1f} MiB/s")
    print(f"export format=raw      {raw:7.3f} s  {raw_bytes / mib / raw:8.1f} MiB/s")
    print(
        f"export format=vhd      {vhd:7.3f} s  {vhd_bytes / mib / vhd:8.1f} MiB/s  ({vhd_bytes} bytes)"
    )
    print(
        f"ratio raw export / cat {at_least((size / raw) / (size / cat), 0.15, digits=3)}"
        "  (throughput, 1.0 = as fast as cat)"
    )
    print(
        f"ratio vhd / raw export {at_least((vhd_bytes / vhd) / (raw_bytes / raw), 0.8, digits=3)}"
        "  (throughput)"
    )
    if args.scale_vms:
        scale(args.scale_vms)
    summary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
