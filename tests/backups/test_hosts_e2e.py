"""Two worker hosts share one run: two Celery workers started as two hosts (their own host
names, node names and var/ folders; the same database, Redis, remote and SECRET_KEY), beat
running the sweep. One host is killed whole mid-run (SIGKILL to every process of it, as a
power loss would): after the heartbeat timeout the other host backs its VMs up again, and the
run still ends complete. ``check_workers`` lists both hosts with their queues and their VMs.
"""

from __future__ import annotations

import os
import signal

import pytest
from django.conf import settings

from tests.backups.sites import WORKER_ENV, sweep_every_second

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

#: A message not acknowledged comes back after 8 s (a short task may run 5 s at most).
BROKER_ENV = {"XOWEB_BROKER_VISIBILITY_SECONDS": "8", "XOWEB_TASK_TIME_LIMIT": "5"}


def host_env(name: str, tmp_path) -> dict[str, str]:
    return {
        **WORKER_ENV,
        **BROKER_ENV,
        "XOWEB_HOST_NAME": name,
        "XOWEB_VAR_DIR": str(tmp_path / name),
        "SECRET_KEY": settings.SECRET_KEY,  # every host decrypts the pools' passwords alike
    }


def test_two_hosts_share_a_run_and_one_dying_hands_its_vms_to_the_other(
    backup_pool,
    make_remote,
    start_celery_worker,
    start_celery_beat,
    run_manage,
    wait_for,
    tmp_path,
) -> None:
    from backups.choices import Trigger
    from backups.models import BackupJob, BackupRun, VmBackup
    from backups.services import runs
    from pools.models import VM

    sim, pool = backup_pool(vms=6, disk_size="2M")
    vms = list(VM.objects.guests().filter(pool=pool).order_by("name_label"))
    remote = make_remote("nas")
    job = BackupJob.objects.create(name="shared", vm_uuids=[vm.uuid for vm in vms], concurrency=4)
    job.remotes.set([remote])
    options = ("--max-tasks-per-child=1",)
    host_a = start_celery_worker(
        queues="backups", concurrency=2, options=options, **host_env("host-a", tmp_path)
    )
    start_celery_worker(
        queues="backups", concurrency=2, options=options, **host_env("host-b", tmp_path)
    )
    # Host b also runs the short tasks (the sweep, the ping), in a worker of their own as the
    # Procfile has it: they never wait behind backups.
    start_celery_worker(queues="celery", concurrency=1, **host_env("host-b", tmp_path))
    sweep_every_second()
    start_celery_beat(**WORKER_ENV, **BROKER_ENV)

    sim.sim("set_rate_limit", 2**18)  # slow enough to list and kill a host while it works
    run = runs.request_run(job, trigger=Trigger.COMMAND, requested_by="tests")

    def both_hosts_busy():
        workers = set(
            VmBackup.objects.filter(run=run, status="running").values_list("worker", flat=True)
        )
        return {worker.partition(":")[0] for worker in workers} == {"host-a", "host-b"}

    wait_for(both_hosts_busy, timeout=60, message="the two hosts never shared the run")
    listing = run_manage("check_workers", "--timeout", "10", **BROKER_ENV)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0] == "3 worker(s) answered the broker's control channel"
    assert sum(line.endswith("; queues backups") for line in lines) == 2
    assert sum(line.endswith("; queues celery") for line in lines) == 1
    assert sum(line.startswith("    backing up VM vm-") for line in lines) >= 2, listing.stdout

    on_a = list(VmBackup.objects.filter(run=run, status="running", worker__startswith="host-a:"))
    assert on_a
    os.killpg(host_a.pid, signal.SIGKILL)  # the whole host: its worker and every child
    host_a.popen.wait(5)
    sim.sim("set_rate_limit", 0)

    ended = wait_for(
        lambda: (
            BackupRun.objects.filter(pk=run.pk).exclude(status__in=["pending", "running"]).first()
        ),
        timeout=90,
        message="the run never ended after one host died",
    )
    assert ended.status == "success", ended.message
    rows = {row.pk: row for row in VmBackup.objects.filter(run=run)}
    assert {row.status for row in rows.values()} == {"success"} and len(rows) == 6
    for lost in on_a:
        again = rows[lost.pk]
        assert again.attempt == 2 and again.worker.startswith("host-b:"), again.worker
        [earlier] = again.earlier_attempts
        assert earlier["worker"] == lost.worker
        assert earlier["error"] == (
            f"interrupted: its worker ({lost.worker}) sent no heartbeat for "
            f"{WORKER_ENV['BACKUP_HEARTBEAT_TIMEOUT']} s (killed, or its host stopped); backing "
            "it up again"
        )
    assert "1 VM(s)" not in ended.message and f"{len(on_a)} backed up again" in ended.message
