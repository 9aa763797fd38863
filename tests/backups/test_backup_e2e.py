"""Backups end to end with the real parts: the simulator over HTTP, the watcher filling the
cache, a real Redis and a real Celery worker process, real files on the remote, and the
commands a script uses (run as subprocesses): ``job_run --wait --json``, ``backup_list --json``
and ``backup_restore`` with the exact keys the scripts rely on. A worker killed mid-transfer is
in tests/backups/test_scale_e2e.py."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.backups.sites import WORKER_ENV

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def backup_site(xapisim_factory, make_pool, start_watcher, start_celery_worker, wait_for):
    """A one-VM simulated pool (three 16 MiB-ish disks, one [NOBAK]) cached live, a worker."""
    from pools.models import VM

    sim = xapisim_factory(vms=1, disk_size="16M")
    pool = make_pool(sim)
    start_watcher()
    wait_for(
        lambda: VM.objects.guests().live().filter(pool=pool).exists(),
        timeout=30,
        message="the watcher never cached the simulator's VM",
    )
    worker = start_celery_worker(concurrency=2, **WORKER_ENV)
    return sim, pool, worker


def manage_json(run_manage, *args: str):
    result = run_manage(*args, "--json", **WORKER_ENV)
    assert result.returncode == 0, result.stderr + result.stdout[-1500:]
    return json.loads(result.stdout)


def test_runs_fulls_with_reasons_deltas_backup_list_and_an_exact_restore(
    backup_site, run_manage, tmp_path
) -> None:
    from backups.models import VmBackupDisk
    from pools.models import VM

    sim, pool, _worker = backup_site
    vm = VM.objects.guests().get(pool=pool)
    manage_json(run_manage, "remote_add", "nas", "--path", str(tmp_path / "nas"))
    manage_json(run_manage, "job_add", "nightly", "--remote", "nas", "--vm", vm.uuid)
    manage_json(run_manage, "schedule_add", "nightly", "--cron", "0 1 * * *", "--name", "daily")
    manage_json(
        run_manage, "schedule_add", "nightly", "--cron", "0 3 * * 0", "--name", "sunday",
        "--force-full",
    )  # fmt: skip

    first = manage_json(run_manage, "job_run", "nightly", "--schedule", "daily", "--wait")
    assert set(first) >= {"run", "status", "vms"} and first["status"] == "success"
    [outcome] = first["vms"]
    assert set(outcome) >= {"uuid", "status", "error", "disks"}
    assert (outcome["uuid"], outcome["status"], outcome["error"]) == (vm.uuid, "success", "")
    assert len(outcome["disks"]) == 2, "the [NOBAK] disk is never backed up"
    for disk in outcome["disks"]:
        assert set(disk) >= {"vdi", "mode", "reason", "bytes", "file"}
        assert disk["mode"] == "full" and "first" in disk["reason"]
        assert disk["bytes"] > 0 and (tmp_path / "nas" / disk["file"]).is_file()

    for vdi in [disk["vdi"] for disk in outcome["disks"]]:
        sim.sim("vdi_write_random", sim.session().xenapi.VDI.get_by_uuid(vdi), 3, "round1")
    delta = manage_json(run_manage, "job_run", "nightly", "--schedule", "daily", "--wait")
    assert {disk["mode"] for disk in delta["vms"][0]["disks"]} == {"delta"}

    forced = manage_json(run_manage, "job_run", "nightly", "--schedule", "sunday", "--wait")
    for disk in forced["vms"][0]["disks"]:
        assert disk["mode"] == "full" and "sunday" in disk["reason"], disk

    points = manage_json(run_manage, "backup_list", "--vm", vm.uuid)
    assert len(points) == 3
    assert [point["timestamp"] for point in points] == sorted(p["timestamp"] for p in points)
    for point in points:
        assert set(point) >= {"id", "vm", "remote", "timestamp", "mode", "disks"}
        assert point["vm"] == vm.uuid and point["remote"] == "nas"
        assert all(set(disk) >= {"vdi", "file"} for disk in point["disks"]), point

    # The newest backup restores to exactly the bytes of the disk at snapshot time.
    # (The newest snapshot is kept on the pool: it is the next delta's base.)
    newest, disk = points[-1], forced["vms"][0]["disks"][0]
    snapshot_uuid = VmBackupDisk.objects.get(
        vm_backup__run_id=forced["run"], vdi_uuid=disk["vdi"]
    ).snapshot_vdi_uuid
    expected = sim.sim("vdi_sha256", sim.session().xenapi.VDI.get_by_uuid(snapshot_uuid))
    target = tmp_path / "restored.raw"
    restored = manage_json(
        run_manage, "backup_restore", str(newest["id"]), "--disk", disk["vdi"],
        "--to-file", str(target),
    )  # fmt: skip
    assert restored["status"] == "success", restored
    assert hashlib.sha256(target.read_bytes()).hexdigest() == expected
    assert restored["result"]["sha256"] == expected
