"""What a schedule proves after its runs, with the real parts: the simulator over HTTP, the
watcher, a real Redis and a real Celery worker process, real files on the remote.

A schedule verifies (deep) and restore-tests after each run. A good backup passes both, and
the restored VM is gone afterwards. A byte flipped in a full is found by the next verification;
the restore test of a backup built on it is refused; the next backup of that disk is a full
with the reason; a restore of the broken point is refused with a clear message; a restored VM
the pool cannot start fails its test with the pool's reason, and is destroyed all the same."""

from __future__ import annotations

import json
import os

import pytest
from django.urls import reverse

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

WORKER_ENV = {
    "BACKUP_HEARTBEAT_TIMEOUT": "6",
    "BACKUP_LOCK_LEASE_SECONDS": "6",
    "BACKUP_LOCK_HEARTBEAT_SECONDS": "1",
    "TASK_HEARTBEAT_SECONDS": "1",
}


def manage_json(run_manage, *args: str):
    result = run_manage(*args, "--json", **WORKER_ENV)
    assert result.returncode == 0, result.stderr + result.stdout[-1500:]
    return json.loads(result.stdout)


def flip_byte(path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) - 512 - 4096)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x10]))


def test_a_schedule_verifies_and_restore_tests_after_each_run(
    xapisim_factory,
    make_pool,
    start_watcher,
    start_celery_worker,
    wait_for,
    run_manage,
    tmp_path,
    client,
) -> None:
    from backups.models import BackupRun, HealthCheck, Verification, VmBackupDisk
    from pools.models import SR, VM

    sim = xapisim_factory(vms=1, disk_size="16M")
    pool = make_pool(sim)
    start_watcher()
    vm = wait_for(
        lambda: VM.objects.guests().live().filter(pool=pool).first(),
        timeout=30,
        message="the watcher never cached the simulator's VM",
    )
    sr = SR.objects.live().filter(pool=pool).exclude(content_type="iso").first()
    start_celery_worker(concurrency=2, **WORKER_ENV)
    xapi = sim.session().xenapi

    manage_json(run_manage, "remote_add", "nas", "--path", str(tmp_path / "nas"))
    manage_json(run_manage, "job_add", "nightly", "--remote", "nas", "--vm", vm.uuid)
    schedule = manage_json(
        run_manage, "schedule_add", "nightly", "--cron", "0 1 * * *", "--name", "daily",
        "--verify", "deep", "--health-check-sr", sr.uuid, "--health-check-timeout", "30",
    )  # fmt: skip
    assert (schedule["verify"], schedule["health_check"]) == ("deep", True)

    def run_and_check() -> tuple[dict, Verification, HealthCheck]:
        run = manage_json(run_manage, "job_run", "nightly", "--schedule", "daily", "--wait")
        assert run["status"] == "success", run

        def checks_done():
            verifications = list(Verification.objects.filter(run_id=run["run"]))
            tests = list(HealthCheck.objects.filter(run_id=run["run"]))
            rows = [*verifications, *tests]
            if len(verifications) == 1 and len(tests) == 1 and all(r.is_final for r in rows):
                return verifications[0], tests[0]
            return None

        verification, test = wait_for(
            checks_done, timeout=60, message=f"the checks after run {run['run']} never ended"
        )
        return run, verification, test

    def gone(vm_uuid: str) -> bool:
        try:
            xapi.VM.get_by_uuid(vm_uuid)
        except Exception as error:
            return "UUID_INVALID" in str(error)
        return False

    # 1. A good backup: verified, restore-tested, and the restored VM destroyed.
    first, verification, test = run_and_check()
    assert verification.status == "passed", verification.message
    assert verification.deep and verification.backups_checked == 1 and verification.bytes_read
    assert test.status == "passed" and test.error == "", test.error
    assert test.destroyed and test.restored_vm_uuid and gone(test.restored_vm_uuid)
    assert test.boot_seconds is not None and test.boot_seconds < 30

    # 2. A byte of the full of the first disk rots; the next run builds a delta on it (nobody
    # knows yet), then its verification finds the flip, and its restore test is refused.
    disk = VmBackupDisk.objects.filter(vm_backup__run_id=first["run"]).order_by("userdevice")[0]
    rotten = next(iter(disk.files.values()))
    flip_byte(tmp_path / "nas" / rotten)
    for vdi in [d["vdi"] for d in first["vms"][0]["disks"]]:
        sim.sim("vdi_write_random", xapi.VDI.get_by_uuid(vdi), 2, "round2")
    second, verification, test = run_and_check()
    assert {d["mode"] for d in second["vms"][0]["disks"]} == {"delta"}
    assert verification.status == "failed"
    assert verification.backups_failed == 2, "the full and the delta built on it"
    assert any(
        problem.startswith(f"{rotten}: its SHA-256 is ")
        for failure in verification.failures
        for problem in failure["problems"]
    ), verification.failures
    assert test.status == "failed" and test.restored_vm_uuid == ""
    assert test.error.startswith(f"not tested: backup {second['vms'][0]['timestamp']} of ")
    assert "failed its last verification" in test.error

    # 3. The next backup of that disk is a full, with the reason; the other disk goes on as a
    # delta. The pool then refuses to start the restored VM: the test fails with its reason,
    # and the VM is destroyed all the same.
    sim.sim("fail_next", "Async.VM.start", ["NO_HOSTS_AVAILABLE"])
    third, verification, test = run_and_check()
    modes = {d["vdi"]: d for d in third["vms"][0]["disks"]}
    again = modes[disk.vdi_uuid]
    assert again["mode"] == "full" and again["reason_code"] == "base_unverified", again
    assert "failed its last verification" in again["reason"]
    assert {d["mode"] for vdi, d in modes.items() if vdi != disk.vdi_uuid} == {"delta"}
    assert verification.status == "failed" and verification.backups_failed == 2, (
        "the new backup passes; the two built on the rotten file still fail"
    )
    assert test.status == "failed"
    assert test.error.startswith("the restored VM did not start: ") and "NO_HOSTS_AVAILABLE" in (
        test.error
    )
    assert test.destroyed and gone(test.restored_vm_uuid)

    # 4. A restore of the broken point is refused, with the reason and what to do.
    points = manage_json(run_manage, "backup_list", "--vm", vm.uuid)
    broken = next(p for p in points if p["timestamp"] == second["vms"][0]["timestamp"])
    refused = run_manage(
        "backup_restore", str(broken["id"]), "--disk", disk.vdi_uuid, "--to-file",
        str(tmp_path / "never.raw"), **WORKER_ENV,
    )  # fmt: skip
    assert refused.returncode == 1 and not (tmp_path / "never.raw").exists()
    assert f"not restored: POINT: backup {broken['timestamp']} of " in refused.stderr
    assert "failed its last verification" in refused.stderr
    assert "run backup_check again once the remote is repaired" in refused.stderr

    # 5. The run page shows what was proven after it.
    run_page = client.get(reverse("backups:run_detail", args=[third["run"]])).content.decode()
    assert "After the run" in run_page and "NO_HOSTS_AVAILABLE" in run_page
    assert BackupRun.objects.get(pk=third["run"]).status == "success"
