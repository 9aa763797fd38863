"""The backups pages in a real browser, on the real parts: create a remote and a job with two
schedules (one forcing fulls) on the pages, run it, watch its progress live, see why each disk
was a full, and restore a disk, with a real worker and the simulator behind."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.backups.test_backup_e2e import WORKER_ENV
from tests.fixtures.browser import save_screenshot
from tests.fixtures.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def log_in(page, base: str) -> None:
    from django.contrib.auth.models import User

    User.objects.create_superuser("admin", password="a-long-password-1")
    page.goto(f"{base}/admin/login/?next=/backups/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "a-long-password-1")
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/backups/")


def run_and_wait(page, schedule: str) -> None:
    page.select_option("form.run-now select[name=schedule]", label=schedule)
    page.click("form.run-now button")
    page.wait_for_url("**/backups/runs/*/")
    wait_until(
        lambda: page.locator("#run-status").inner_text() not in ("pending", "running"),
        timeout=90,
        message="the run never ended",
    )
    assert page.locator("#run-status").inner_text() == "success", page.content()[-3000:]


def test_remote_job_two_schedules_run_progress_reasons_restore(
    live_server,
    browser_page,
    xapisim_factory,
    make_pool,
    start_watcher,
    start_celery_worker,
    settings,
    tmp_path: Path,
) -> None:
    from backups.models import BackupJob, Restore
    from pools.models import VM

    sim = xapisim_factory(vms=1, disk_size="16M")
    pool = make_pool(sim)
    start_watcher()
    wait_until(
        lambda: VM.objects.guests().live().filter(pool=pool).exists(),
        timeout=30,
        message="the watcher never cached the VM",
    )
    settings.BACKUP_RESTORE_DIR = tmp_path / "restores"
    start_celery_worker(concurrency=2, BACKUP_RESTORE_DIR=str(tmp_path / "restores"), **WORKER_ENV)
    vm = VM.objects.guests().get(pool=pool)
    page, base = browser_page, live_server.url
    log_in(page, base)

    # A remote, write-tested when saved.
    page.goto(f"{base}/backups/remotes/add/")
    page.fill("#id_name", "nas")
    page.fill("#id_path", str(tmp_path / "nas"))
    page.click("form.remote-form button[type=submit]")
    page.wait_for_url("**/backups/remotes/*/")
    assert "Writable" in page.inner_text("dl.facts")

    # A job with a nightly schedule and a Sunday one that forces fulls.
    page.goto(f"{base}/backups/jobs/add/")
    page.fill("#id_name", "nightly")
    page.select_option("#id_vm_uuids", value=vm.uuid)
    page.check("input[name=remotes]")
    page.fill("#id_schedules-0-name", "nightly")
    page.fill("#id_schedules-0-cron", "0 1 * * *")
    page.click("#add-schedule")
    page.fill("#id_schedules-1-name", "sunday")
    page.fill("#id_schedules-1-cron", "0 3 * * 0")
    page.check("#id_schedules-1-force_full")
    page.click("form.job-form button[type=submit]")
    page.wait_for_url("**/backups/jobs/*/")
    assert "every backup a full" in page.inner_text("body")
    assert "At 03:00, only on Sunday" in page.inner_text("body")
    job = BackupJob.objects.get()
    assert {s.name: s.force_full for s in job.schedules.all()} == {
        "nightly": False,
        "sunday": True,
    }

    # Run it, slowed down so that the progress is seen moving without a reload.
    sim.sim("set_rate_limit", 2 * 2**20)
    page.select_option("form.run-now select[name=schedule]", label="nightly")
    page.click("form.run-now button")
    page.wait_for_url("**/backups/runs/*/")
    page.evaluate("window.notReloaded = true")
    seen = set()

    def progress_moved() -> bool:
        bar = page.locator("#run-progress")
        if bar.count():
            seen.add(bar.get_attribute("value"))
        return len(seen) >= 2 and page.locator("#run-status").inner_text() != "pending"

    wait_until(progress_moved, timeout=60, message="the run's progress never moved")
    save_screenshot(page, "backups-run-progress")
    wait_until(
        lambda: page.locator("#run-status").inner_text() == "success",
        timeout=90,
        message="the first run never succeeded",
    )
    assert page.evaluate("window.notReloaded") is True, "the page updated itself"
    reasons = page.locator("td.reason").all_inner_texts()
    assert len(reasons) == 2 and all("first" in reason for reason in reasons), reasons
    sim.sim("set_rate_limit", 0)

    # The Sunday schedule makes every disk a full, and says so.
    page.goto(f"{base}{job.get_absolute_url()}")
    run_and_wait(page, "sunday")
    reasons = page.locator("td.reason").all_inner_texts()
    assert all("sunday" in reason for reason in reasons), reasons
    assert set(page.locator(".disk-mode").all_inner_texts()) == {"full"}
    save_screenshot(page, "backups-run-forced-full")

    # Restore a disk of the newest backup to a file, from the VM's restore points.
    page.click(f'a[href="/backups/vms/{vm.uuid}/"]')
    page.wait_for_url(f"**/backups/vms/{vm.uuid}/")
    newest = page.locator("tr.point").first
    newest.locator("select[name=target]").select_option("file")
    newest.locator("form.restore-disk button").click()
    page.wait_for_url("**/backups/restores/*/")
    wait_until(
        lambda: page.locator("#restore-status").inner_text() in ("success", "failed"),
        timeout=60,
        message="the restore never ended",
    )
    restore = Restore.objects.get()
    assert restore.status == "success", restore.error
    written = Path(restore.result["path"])
    assert hashlib.sha256(written.read_bytes()).hexdigest() == restore.result["sha256"]
    assert restore.result["sha256"] in page.inner_text("#restore-result")
    save_screenshot(page, "backups-restore")

    # From the newest backup's page: verify the VM's backups (deep), then restore-test it; both
    # pages follow their work live, and the point's page then shows its verification.
    page.goto(f"{base}/backups/vms/{vm.uuid}/")
    page.locator("tr.point").first.locator("td a").first.click()
    page.wait_for_url("**/backups/points/*/")
    point_url = page.url
    assert "not verified" in page.inner_text("#last-verification")
    page.check("form.verify input[name=deep]")
    page.click("form.verify button")
    page.wait_for_url("**/backups/verifications/*/")
    wait_until(
        lambda: page.locator("#verification-status").inner_text() not in ("pending", "running"),
        timeout=60,
        message="the verification never ended",
    )
    assert page.locator("#verification-status").inner_text() == "passed", page.content()[-2000:]
    page.goto(point_url)
    assert "verified" in page.inner_text("#last-verification")
    assert "deep check" in page.inner_text("#last-verification")
    save_screenshot(page, "backups-point-verified")
    page.click("form.health-check button")
    page.wait_for_url("**/backups/health-checks/*/")
    wait_until(
        lambda: page.locator("#health-check-status").inner_text() not in ("pending", "running"),
        timeout=60,
        message="the restore test never ended",
    )
    assert page.locator("#health-check-status").inner_text() == "passed", page.content()[-2000:]
    assert "destroyed" in page.inner_text("#restored-vm")
