"""A simulated pool for the backup benchmarks: `python -m xapisim` on a free port, a logged-in
`XapiClient`, and VMs whose disks are filled with data through `/import_raw_vdi`.

Not a benchmark itself; `bench_backup_*.py` import it.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pools.xapi import XapiClient  # noqa: E402

BLOCK = 2 * 1024 * 1024
PASSWORD = "xapisim"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SimPool:
    """The simulator process and a client; use as a context manager."""

    def __init__(self, data: Path, *, vms: int = 1, disk_size: str = "16M") -> None:
        self.data = data
        self.vms, self.disk_size = vms, disk_size
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.client: XapiClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> SimPool:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "xapisim",
                "--port",
                str(self.port),
                "--data",
                str(self.data),
                "--vms",
                str(self.vms),
                "--disk-size",
                self.disk_size,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "ready at" not in line:
            self.process.kill()
            raise SystemExit(f"xapisim did not start: {line!r}")
        self.client = XapiClient(self.url, "root", PASSWORD, timeout=600)
        self.client.login()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.client is not None:
            self.client.logout()
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def sim(self, method: str, *args: object):
        assert self.client is not None
        return self.client.call(f"sim.{method}", *args)

    def make_vm(self, name: str, size: int) -> tuple[str, str]:
        """A halted VM with one disk of ``size`` bytes, every block written; (vm uuid, vdi ref)."""
        assert self.client is not None
        vm = self.sim("vm_create", name, "1", str(size), "Halted")
        vbd = next(
            v
            for v in self.client.call("VM.get_VBDs", vm)
            if self.client.call("VBD.get_type", v) == "Disk"
        )
        vdi = self.client.call("VBD.get_VDI", vbd)
        self.fill(vdi, size)
        return self.client.call("VM.get_uuid", vm), vdi

    def fill(self, vdi: str, size: int, *, seed: int = 1) -> None:
        """Write every block of the disk (distinct data per block) as one raw upload."""
        assert self.client is not None
        self.client.import_stream(
            "/import_raw_vdi", {"vdi": vdi, "format": "raw"}, blocks(size, seed), size, label="fill"
        )
        settle()

    def coalesce(self) -> None:
        """What the SR does between two nightly backups (untimed): coalesce the base copies of
        destroyed snapshots, or the engine's chain protection skips the next backup."""
        self.sim("coalesce")

    def change(self, vdi: str, count: int, *, seed: int) -> None:
        """Rewrite ``count`` random blocks (a part of each, as a guest would)."""
        self.sim("vdi_write_random", vdi, str(count), str(seed))
        settle()


def settle() -> None:
    """Write back what the set-up left dirty (untimed), so that a timed backup's own fsync does
    not also pay for the simulator's writes of the disk it is about to read."""
    os.sync()


def blocks(size: int, seed: int) -> Iterator[bytes]:
    """``size`` bytes of incompressible-looking data, each 2 MiB block distinct, cheap to make."""
    pattern = bytearray(os.urandom(BLOCK))
    for index in range(size // BLOCK):
        pattern[:16] = index.to_bytes(8, "big") + seed.to_bytes(8, "big")
        yield bytes(pattern)


def peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def curl_export(pool: SimPool, vdi: str, target: Path) -> None:
    """The baseline of the backup benchmarks: ``vdi``'s VHD export downloaded with curl into
    ``target``, then fsynced (no parsing, no hashing, no database)."""
    assert pool.client is not None and pool.client._session is not None
    session = pool.client._session.handle
    url = f"{pool.url}export_raw_vdi?session_id={session}&vdi={vdi}&format=vhd"
    subprocess.run(["curl", "-sSf", "-o", str(target), url], check=True)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
