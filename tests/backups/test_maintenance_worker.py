"""A merge task, a clean pass and a retention run, each SIGKILLed at random instants (drawn
from a seeded generator) in a real Celery worker process, then run again: nothing committed is
lost, every backup kept restores exactly, no temporary file is left, and the merge task a backup
leaves is queued on the backups queue and done there.

The dozens of kills at every instant, and the states a power loss leaves, are the engine's
in-process tests (tests/engine/test_maintenance_kill.py, test_power_loss.py); this is the same
promise with the real parts: the task, its redelivery, the lock a killed worker leaves.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from backups.engine import RemoteAdapter
from backups.models import BackupJob, CleanReport, Schedule
from tests.engine.synthetic import (
    DAILY,
    JOB_ID,
    SyntheticVm,
    dot_files,
    restores_exactly,
    vhd_files,
)
from tests.fixtures.processes import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LEASE = 2
WORKER_ENV = {
    "BACKUP_LOCK_LEASE_SECONDS": str(LEASE),
    "BACKUP_LOCK_HEARTBEAT_SECONDS": "1",
    "BACKUP_MERGE_BATCH_MIB": "2",  # a flush and a state save every block: slow enough to hit
    "TASK_HEARTBEAT_SECONDS": "1",
}
BIG = 2 * 2**20


@pytest.fixture
def setup(make_remote, tmp_path):
    """A template remote: five backups of a two-disk VM in 2 MiB blocks; a job whose daily
    schedule keeps the newest two."""
    remote = make_remote("nas")
    job = BackupJob.objects.create(name="nightly", uuid=JOB_ID, vm_uuids=["x"])
    job.remotes.set([remote])
    Schedule.objects.create(job=job, name="daily", uuid=DAILY, cron="0 1 * * *", retention=2)
    template = tmp_path / "template"
    vm = SyntheticVm.make(RemoteAdapter(template), disks=2, blocks=8, block=BIG)
    stamps = []
    for _ in range(5):
        vm.write(4)
        stamps.append(vm.backup())
    return remote, job, vm, stamps, template


def the_task_pid(started_after) -> int:
    """The worker process running the clean or retention task (its task row says)."""
    from tasks.models import Task

    def running():
        return (
            Task.objects.filter(kind="clean", status="running", started__gte=started_after)
            .exclude(host="")
            .values_list("host", flat=True)
            .first()
        )

    host = wait_until(running, timeout=30, message="the task never started")
    return int(host.rsplit(":", 1)[1])


def settle(remote, vm_uuid: str, job=None) -> None:
    """Run the pass again (in this process; with the job's retention for a retention run) once
    the killed worker's lease is over, until one gets the lock (the redelivered task may hold
    it a moment)."""
    from backups.services import maintenance

    deadline = time.monotonic() + 60
    lock = Path(remote.path) / "xo-vm-backups" / f"{vm_uuid}.lock"
    while True:
        if lock.exists():
            time.sleep(LEASE + 0.2)
            if lock.exists() and not any(lock.iterdir()):
                os.utime(lock, (1, 1))  # a lock folder a kill left without its lease, long ago
        if job is not None:
            [result] = maintenance.prune(job, vm_uuids=[vm_uuid])
        else:
            result = maintenance.clean(remote, vm_uuids=[vm_uuid])
        if not result.reports[0].skipped:
            return
        assert time.monotonic() < deadline, result.reports[0].skipped


def test_kills_at_random_instants_in_a_real_worker_lose_nothing(setup, start_celery_worker):
    from backups import tasks

    remote, job, vm, stamps, template = setup
    worker = start_celery_worker(queues="backups", concurrency=1, **WORKER_ENV)
    rng = random.Random(2026)
    root = Path(remote.path)
    kinds = ["merge", "clean", "retention"] * 2
    for number, kind in enumerate(kinds):
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(template, root)
        expected = dict(vm.expected)
        committed = set(stamps)
        folder = root / "xo-vm-backups" / vm.uuid
        if kind in ("merge", "clean"):
            for dropped in stamps[1:3]:  # retention ran already: their deltas wait to be merged
                (folder / f"{dropped}.json").unlink()
                committed.discard(dropped)
            (folder / f".{stamps[4]}.json.feedf00d.partial").write_bytes(b"{")
        else:
            committed = set(stamps[-2:])
        started = timezone.now() - timedelta(seconds=1)
        if kind == "merge":
            result = tasks.merge_vm.delay(remote.pk, vm.uuid)
        elif kind == "clean":
            result = tasks.clean_remote.delay(remote.pk)
        else:
            result = tasks.prune_job.delay(job.pk)
        pid = the_task_pid(started)
        time.sleep(rng.uniform(0.0, 0.4))
        try:
            os.kill(pid, signal.SIGKILL)
            killed = True
        except ProcessLookupError:
            killed = False  # it finished first: a kill after the end is an instant too
        # The message comes back (acks late, rejected when its worker is lost); the new worker
        # process may find the dead one's lock still leased: either way it ends.
        result.get(timeout=90, propagate=False)
        settle(remote, vm.uuid, job if kind == "retention" else None)
        adapter = RemoteAdapter(root)
        present = {entry.timestamp for entry in adapter.list_backups(vm.uuid)}
        try:
            assert committed <= present, f"lost {sorted(committed - present)}"
            if kind == "retention":
                assert present == committed
            restores_exactly(adapter, expected)
            assert dot_files(adapter) == []
            assert set(vhd_files(adapter)) == {
                disk.path for entry in adapter.list_backups(vm.uuid) for disk in entry.disks
            }
        except AssertionError as error:
            raise AssertionError(f"{kind} #{number} (killed: {killed}): {error}") from None
    assert worker.alive()
    assert CleanReport.objects.filter(remote=remote, vm_uuid=vm.uuid).exists()
