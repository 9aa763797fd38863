"""A whole xoweb site for the benchmarks of runs: a throwaway database, a real Redis, the
simulator registered as a pool and cached by the real watcher, and Celery worker processes
started and stopped at will, as the Procfile starts them (``--max-tasks-per-child=1``).

Not a benchmark itself: ``bench_runs_*.py`` import it. Run from a benchmark script (which puts
this folder on ``sys.path``); Django is set up on the site's database when it starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from engine_pool import SimPool, free_port

REPO = Path(__file__).resolve().parents[1]
#: Fast beats: a VM backup's rows are touched every second (as the tests do).
SITE_ENV = {
    "TASK_HEARTBEAT_SECONDS": "1",
    "BACKUP_MAX_EXPORTS_PER_POOL": "0",
    "LOG_LEVEL": "WARNING",
    "POOL_WATCHER_POLL_SECONDS": "1",
}


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children it has reaped (a worker's fresh processes)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, every core."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")


def disk_busy() -> float:
    """Seconds the busiest block device spent doing I/O since boot (/proc/diskstats)."""
    busiest = 0.0
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        if (
            len(fields) > 12
            and not fields[2].startswith(("loop", "ram"))
            and fields[2][-1:].isalpha()
        ):
            busiest = max(busiest, int(fields[12]) / 1000)
    return busiest


@dataclass
class RunTimes:
    """Where a run's time went: its wall time, and per kind of step the seconds summed over
    its VMs (process start and claim included as "waiting for a process")."""

    wall: float
    vms: int
    steps: dict[str, float] = field(default_factory=dict)
    transfer: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        total = sum(self.steps.values()) or 1.0
        found = [
            f"    {kind:<32} {seconds:8.2f} s summed over the VMs ({seconds / total:5.1%})"
            for kind, seconds in sorted(self.steps.items(), key=lambda item: -item[1])
        ]
        found += [
            f"    {'CPU of ' + who if 'disk' not in who else who:<32} {seconds:8.2f} s "
            f"({seconds / self.wall:4.0%} of the run's wall time"
            + (" on one core)" if "disk" not in who else ")")
            for who, seconds in self.cpu.items()
        ]
        return found


class RunSite:
    """Use as a context manager; ``pool_vm_uuids``, ``workers(n)``, ``run(job)``."""

    def __init__(self, *, vms: int, disk_size: str, folder: Path | None = None) -> None:
        self.stack = ExitStack()
        self.folder = Path(self.stack.enter_context(tempfile.TemporaryDirectory(dir=folder)))
        self.vms, self.disk_size = vms, disk_size
        self.processes: list[subprocess.Popen] = []
        self.worker: subprocess.Popen | None = None

    def __enter__(self) -> RunSite:
        port = free_port()
        self._start(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"])
        os.environ.update(
            SITE_ENV,
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            XOWEB_VAR_DIR=str(self.folder / "var"),
            DATABASE_URL=f"sqlite:///{self.folder / 'site.sqlite3'}",
            DJANGO_SETTINGS_MODULE="xoweb.settings",
        )
        sys.path.insert(0, str(REPO))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        self.sim = self.stack.enter_context(
            SimPool(self.folder / "sim", vms=self.vms, disk_size=self.disk_size)
        )
        from pools.models import VM, Pool

        pool = Pool(name="bench", master_url=self.sim.url, username="root")
        pool.set_password("xapisim")
        pool.save()
        self._start([sys.executable, "manage.py", "watch_pools"])
        wait(
            lambda: VM.objects.guests().live().count() >= self.vms,
            120,
            "the watcher to cache the simulator's VMs",
        )
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_worker()
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.stack.close()

    def _start(self, argv: list[str]) -> subprocess.Popen:
        log = open(self.folder / f"{Path(argv[0]).name}-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def add_filled_vms(self, count: int, size: int) -> list[str]:
        """``count`` more halted VMs with one disk of ``size`` bytes, every block written
        (untimed set-up), cached by the watcher; the refs of their disks."""
        from pools.models import VM

        disks = [self.sim.make_vm(f"bench-{n:02d}", size)[1] for n in range(count)]
        wait(
            lambda: VM.objects.guests().live().count() >= self.vms + count,
            120,
            "the watcher to cache the new VMs",
        )
        return disks

    def vm_uuids(self) -> list[str]:
        from pools.models import VM

        return list(VM.objects.guests().order_by("name_label").values_list("uuid", flat=True))

    def start_worker(self, processes: int) -> None:
        """One worker with ``processes`` child processes, as the Procfile's backups worker."""
        self.stop_worker()
        log = open(self.folder / f"worker-{processes}.log", "w")  # noqa: SIM115
        self.worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "xoweb",
                "worker",
                "--queues=backups,celery",
                f"--concurrency={processes}",
                "--max-tasks-per-child=1",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=WARNING",
            ],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        from xoweb.celery import app

        wait(lambda: app.control.ping(timeout=0.5), 60, "the worker to answer")

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            os.killpg(self.worker.pid, signal.SIGTERM)
            self.worker.wait(30)
        self.worker = None

    def run(self, job, *, force_full: bool = True, timeout: float = 3600) -> RunTimes:
        """Run ``job`` now and wait for its end; where its time went."""
        from backups.choices import RunStatus, Trigger
        from backups.models import BackupRun, VmBackup, VmBackupDisk
        from backups.services import runs
        from tasks.models import Task

        started = time.perf_counter()
        cpu_before = self._cpu()
        run = runs.request_run(job, trigger=Trigger.COMMAND, force_full=force_full)
        run = wait(
            lambda: BackupRun.objects.filter(pk=run.pk, status__in=RunStatus.final()).first(),
            timeout,
            f"run {run.pk} to end",
        )
        wall = time.perf_counter() - started
        cpu = {who: seconds - cpu_before[who] for who, seconds in self._cpu().items()}
        if run.status != RunStatus.SUCCESS:
            raise SystemExit(f"run {run.pk} ended {run.status}: {run.message}")
        steps: dict[str, float] = defaultdict(float)
        vm_backups = list(VmBackup.objects.filter(run=run).select_related("task"))
        for vm_backup in vm_backups:
            steps["queued: waiting for a process"] += (
                vm_backup.started - vm_backup.queued_at
            ).total_seconds()
            steps["the VM backup, other"] += (vm_backup.ended - vm_backup.started).total_seconds()
        for task in Task.objects.filter(root_id=run.task_id).exclude(kind__in=["vm", "run"]):
            if task.started and task.ended:
                seconds = (task.ended - task.started).total_seconds()
                steps[task.kind or task.name] += seconds
                steps["the VM backup, other"] -= seconds
        transfer = sum(
            VmBackupDisk.objects.filter(vm_backup__run=run).values_list("duration", flat=True)
        )
        return RunTimes(
            wall=wall, vms=len(vm_backups), steps=dict(steps), transfer=transfer, cpu=cpu
        )

    def _cpu(self) -> dict[str, float]:
        """CPU seconds so far: the simulator, the worker (with its reaped processes), and the
        machine (every core, every process, this benchmark's and anyone else's)."""
        assert self.sim.process is not None and self.worker is not None
        # A process still running is counted when it is reaped, after the run.
        return {
            "the simulator (one process)": cpu_seconds(self.sim.process.pid),
            "the worker processes": cpu_seconds(self.worker.pid),
            "the whole machine (2 cores)": machine_busy()[0],
            "disk: time busy": disk_busy(),
        }
