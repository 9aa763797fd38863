"""The restore wizard in a real browser, with a real worker and the simulator: a VM backed up,
then deleted from its pool; its backup restored through the wizard (a point on the timeline,
what, where, confirm) as a disk on an SR, as a download and as a whole new VM; each restore
ends with the checksum comparison, and the SHA-256 is the pool's own for the snapshot."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.backups.test_backup_e2e import WORKER_ENV, backup_site  # noqa: F401 (fixture)
from tests.fixtures.browser import save_screenshot
from tests.fixtures.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def back_up(vm, remote, wait_for):
    """A job of this VM to ``remote``, run once from the page by the worker; its run."""
    from backups.choices import Trigger
    from backups.models import BackupJob, BackupRun
    from backups.services import runs

    job = BackupJob.objects.create(name="nightly", vm_uuids=[vm.uuid])
    job.remotes.set([remote])
    run = runs.request_run(job, trigger=Trigger.PAGE)
    wait_for(
        lambda: BackupRun.objects.filter(pk=run.pk, status="success").exists(),
        timeout=90,
        message="the backup never succeeded",
    )
    return run


def wizard_restore(page, base: str, vm_uuid: str, *, what: str, disk: str = "", where: dict):
    """Walk the wizard: the newest point, ``what``, ``where``; confirm; wait for the end."""
    page.goto(f"{base}/backups/vms/{vm_uuid}/restore/")
    page.locator("a.timeline-point").last.click()  # the newest point, on the timeline
    page.wait_for_selector("#step-what")
    page.check(f"form.wizard-what input[value={what}]")
    if disk:
        page.select_option("form.wizard-what select[name=disk]", value=disk)
    page.click("form.wizard-what button")
    page.wait_for_selector("#step-where")
    if "format" in where:
        page.check(f"form.wizard-where input[value={where['format']}]")
    else:
        page.select_option("form.wizard-where select[name=sr]", value=where["sr"])
    page.click("form.wizard-where button")
    page.wait_for_selector("#step-confirm")
    summary = page.inner_text("#restore-summary")
    page.click("form.wizard-confirm button")
    page.wait_for_url("**/backups/restores/*/")
    wait_until(
        lambda: page.locator("#restore-status").inner_text() in ("success", "failed"),
        timeout=90,
        message="the restore never ended",
    )
    assert page.locator("#restore-status").inner_text() == "success", page.inner_text("main")
    return summary


def test_the_wizard_restores_a_deleted_vm_and_proves_it_by_checksum(
    live_server,
    logged_in_page,
    xapisim_factory,
    make_pool,
    make_remote,
    start_watcher,
    start_celery_worker,
    wait_for,
    settings,
    tmp_path: Path,
) -> None:
    from backups.models import Restore, VmBackupDisk
    from pools.models import SR, VM

    sim = xapisim_factory(vms=1, disk_size="16M")
    pool = make_pool(sim)
    start_watcher()
    wait_for(lambda: VM.objects.guests().live().exists(), timeout=30, message="no VM cached")
    restores_dir = tmp_path / "restores"
    settings.BACKUP_RESTORE_DIR = restores_dir
    start_celery_worker(concurrency=2, BACKUP_RESTORE_DIR=str(restores_dir), **WORKER_ENV)
    vm = VM.objects.guests().get(pool=pool)
    run = back_up(vm, make_remote("nas"), wait_for)
    disks = {row.vdi_uuid: row for row in VmBackupDisk.objects.filter(vm_backup__run=run)}
    session = sim.session()
    expected = {  # the pool's own SHA-256 of each disk at snapshot time
        vdi: sim.sim("vdi_sha256", session.xenapi.VDI.get_by_uuid(row.snapshot_vdi_uuid))
        for vdi, row in disks.items()
    }
    first, second = sorted(disks, key=lambda vdi: disks[vdi].userdevice)

    x = session.xenapi
    (mac,) = [x.VIF.get_MAC(vif) for vif in x.VM.get_VIFs(x.VM.get_by_uuid(vm.uuid))]
    # The VM is deleted from its pool: its backups are all that is left of it.
    sim.sim("vm_destroy", session.xenapi.VM.get_by_uuid(vm.uuid))
    wait_for(lambda: not VM.objects.filter(uuid=vm.uuid).exists(), timeout=30, message="cached")
    sr = SR.objects.live().get(pool=pool, name_label="Shared storage")
    page, base = logged_in_page, live_server.url

    page.goto(f"{base}/backups/vms/{vm.uuid}/restore/")
    assert "no longer on any pool" in page.inner_text("main")
    assert page.locator("a.timeline-point").count() == 1
    save_screenshot(page, "restore-wizard-timeline")

    # One disk to an SR.
    summary = wizard_restore(
        page, base, vm.uuid, what="disk-sr", disk=second, where={"sr": sr.uuid}
    )
    assert f"to SR Shared storage of pool {pool.name}" in summary
    check = page.locator(f"table.checks tr[data-vdi='{second}']")
    assert "equal: the restored disk holds exactly the backup" in check.inner_text()
    restore = Restore.objects.get(kind="disk-sr")
    [checked] = restore.result["checks"]
    assert checked["backup_sha256"] == checked["restored_sha256"] == expected[second]
    new_vdi = session.xenapi.VDI.get_by_uuid(restore.result["vdi"])
    assert sim.sim("vdi_sha256", new_vdi) == expected[second], "the pool agrees"
    save_screenshot(page, "restore-wizard-checksum")

    # One disk as a download, raw.
    wizard_restore(page, base, vm.uuid, what="download", disk=first, where={"format": "raw"})
    with page.expect_download() as download:
        page.click("#restore-download")
    assert hashlib.sha256(Path(download.value.path()).read_bytes()).hexdigest() == expected[first]
    assert "equal: the restored disk" in page.inner_text("table.checks")

    # The whole VM, as a new VM: every disk compared. It replaces a lost original, so the
    # wizard keeps the backup's MAC addresses unless told otherwise.
    summary = wizard_restore(page, base, vm.uuid, what="vm", where={"sr": sr.uuid})
    assert "with the backup's MAC addresses" in summary
    restore = Restore.objects.get(kind="vm")
    assert {
        check["vdi"]: check["restored_sha256"] for check in restore.result["checks"]
    } == expected
    assert page.locator("span.checksum.ok").count() == 2
    new_vm = session.xenapi.VM.get_by_uuid(restore.result["vm"])
    assert "(restored " in session.xenapi.VM.get_name_label(new_vm)
    assert [x.VIF.get_MAC(vif) for vif in x.VM.get_VIFs(new_vm)] == [mac]


def test_a_restored_disk_that_differs_from_the_backup_fails_the_restore_and_says_so(
    backup_site,  # noqa: F811 (the fixture)
    make_remote,
    wait_for,
    tmp_path,
    monkeypatch,
):
    """The comparison reads the restored file back: a byte flipped after the write (a disk
    that lies, a file changed under the restore) fails the restore, naming both checksums.
    The restore runs in this process here, so that the write can be tampered with."""
    from backups.models import Restore, RestorePoint
    from backups.services import bridge, restores
    from pools.models import VM

    _sim, pool, _worker = backup_site
    vm = VM.objects.guests().get(pool=pool)
    back_up(vm, make_remote("nas"), wait_for)
    point = RestorePoint.objects.get(vm_uuid=vm.uuid)
    real = bridge.restore_disk_to_file

    def flipping(*args, **kwargs):
        done = real(*args, **kwargs)
        with open(done.path, "r+b") as handle:
            handle.seek(100)
            byte = handle.read(1)
            handle.seek(100)
            handle.write(bytes([byte[0] ^ 0xFF]))
        return done

    monkeypatch.setattr(bridge, "restore_disk_to_file", flipping)
    # Recorded as the wizard records it, but not queued: this process does the work.
    (tmp_path / "restores").mkdir()
    restore = Restore.objects.create(
        point=point,
        remote=point.remote,
        backup_path=point.path,
        vm_uuid=vm.uuid,
        timestamp=point.timestamp,
        kind="disk-file",
        vdi_uuid=point.disks[0]["vdi"],
        file_path=str(tmp_path / "restores" / "disk.raw"),
        file_format="raw",
    )
    assert restores.run(restore.pk) == "failed"
    restore.refresh_from_db()
    [check] = restore.result["checks"]
    assert check["equal"] is False
    assert restore.error.startswith(f"the restored disk {point.disks[0]['name']} (")
    assert (
        f"differs from the backup: SHA-256 {check['restored_sha256'][:16]}… instead of "
        f"{check['backup_sha256'][:16]}…" in restore.error
    )
