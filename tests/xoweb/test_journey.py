"""The whole journey of a new administrator, in a real browser, from a fresh `make run`.

The Procfile is started under honcho as the Makefile starts it (after the same set-up
commands), with a smaller demo pool (tiny disks) and beat's clock ten times faster
(``XOWEB_BEAT_CLOCK_SPEED``, xoweb/beat_clock.py): the demo's schedules of every two and every
ten minutes fire every twelve seconds and every minute, through the real beat, PeriodicTasks and
workers. One browser session then sees, on the dashboard, a successful scheduled run, then a
forced full with its reason; and restores a disk through the wizard, whose checksums match.
Retention and a merge have happened by then (the clean pass's reports say so).
The screenshots are kept in test-artifacts/; with ``XOWEB_DOC_IMAGES=1`` they also replace
the user guide's and the README's in docs/images/.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.browser import save_screenshot
from tests.fixtures.make_run import Site, make_run, manage
from tests.fixtures.processes import ROOT, wait_until

# One `make run` stack at a time, in one test process (the Makefile's --dist loadgroup).
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("make-run")]

#: Ten times faster: a scaled minute is six seconds, more than a demo run takes, so the forced
#: full at :05 does not find the delta run of :04 still running (a job never runs twice at once;
#: it would be skipped, and the next forced full is ten scaled minutes later).
SPEED = 10
DOC_IMAGES = ROOT / "docs" / "images"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The Procfile as it is, with a smaller demo pool: 6 VMs with 16 MiB disks."""

    def small_pool(line: str) -> str:
        if line.startswith("simulator:"):
            return line.replace("--vms 12", "--vms 6").replace(
                "--disk-size 256M", "--disk-size 16M"
            )
        return line

    settings = {
        "XOWEB_BEAT_CLOCK_SPEED": str(SPEED),
        "XOWEB_DEMO_WRITE_SECONDS": "2",
        # A reading of the remote's space at each check, and a forecast after 10 s of them.
        "OUTLOOK_SAMPLE_SECONDS": "1",
        "OUTLOOK_MIN_SPAN_SECONDS": "10",
        "XOWEB_WORKER_STOP_SECONDS": "2",
        "POOL_STALE_GRACE_SECONDS": "60",
    }
    with make_run(tmp_path_factory.mktemp("journey"), settings, small_pool) as site:
        yield site


def keep(page, name: str) -> Path:
    """A screenshot for the artifacts; with ``XOWEB_DOC_IMAGES=1``, the docs' copy too (so that
    an ordinary test run leaves the tracked images alone)."""
    path = save_screenshot(page, name)
    if os.environ.get("XOWEB_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{name}.png")
    return path


def test_from_make_run_to_a_proven_restore(demo_site: Site, browser) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    base = demo_site.web
    try:
        page.goto(f"{base}/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", demo_site.secret("admin_password"))
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")

        # Within the first (scaled) minutes: a scheduled run of the demo job succeeded.
        runs = page.locator("#dashboard-runs tbody tr")

        def scheduled_success() -> bool:
            texts = runs.all_inner_texts()
            return any("every 2 minutes" in row and "success" in row for row in texts) or any(
                "full every 10 minutes" in row and "success" in row for row in texts
            )

        explained(demo_site, page, scheduled_success, "a successful scheduled run")
        keep(page, "dashboard")

        # Then a forced full, and why it was a full.
        def forced_full() -> str:
            for row in runs.all_inner_texts():
                if "full every 10 minutes" in row and "success" in row:
                    return row
            return ""

        row = explained(demo_site, page, forced_full, "a forced full")
        assert "forced by schedule" in row, row
        page.locator("#dashboard-runs tr", has_text="full every 10 minutes").first.locator(
            "a"
        ).first.click()
        page.wait_for_url("**/backups/runs/*/")
        reasons = page.locator("td.reason").all_inner_texts()
        assert reasons and all(
            "the schedule 'full every 10 minutes' forces full backups" in reason
            for reason in reasons
        ), reasons
        keep(page, "run-page")

        # The job's page: what it takes, and its next runs disk by disk.
        page.get_by_role("link", name="demo", exact=True).first.click()
        page.wait_for_selector("table.plan-calendar")
        assert "not backed up: its name contains [NOBAK]" in page.inner_text("table.plan-vms")
        keep(page, "job-plan")

        # The remote's storage outlook.
        page.goto(f"{base}/backups/remotes/")
        page.get_by_role("link", name="demo", exact=True).first.click()
        page.wait_for_selector("#outlook")
        keep(page, "remote-outlook")

        # A restore through the wizard: the newest point, one disk to the shared SR.
        page.goto(f"{base}/backups/points/")
        page.locator("a", has_text="Restore…").first.click()
        page.wait_for_selector("a.timeline-point")
        page.locator("a.timeline-point").last.click()
        page.wait_for_selector("#step-what")
        page.check("form.wizard-what input[value=disk-sr]")
        page.click("form.wizard-what button")
        page.wait_for_selector("#step-where")
        page.select_option("form.wizard-where select[name=sr]", label="demo / Shared storage")
        page.click("form.wizard-where button")
        page.wait_for_selector("#step-confirm")
        keep(page, "restore-wizard")
        page.click("form.wizard-confirm button")
        page.wait_for_url("**/backups/restores/*/")
        wait_until(
            lambda: page.locator("#restore-status").inner_text() in ("success", "failed"),
            timeout=90,
            message="the restore never ended",
        )
        assert page.locator("#restore-status").inner_text() == "success", page.inner_text("main")
        assert "equal: the restored disk holds exactly the backup" in page.inner_text(
            "table.checks"
        )
        keep(page, "restore-checksum")

        # Within the first ten (scaled) minutes, retention dropped backups and a merge ran.
        def retention_and_merge() -> str:
            done = manage(
                demo_site.env,
                "shell",
                "-c",
                "from backups.models import CleanReport as R; rows = list(R.objects.all()); "
                "print(sum(len(r.dropped) for r in rows), sum(r.merges_done for r in rows))",
            )
            dropped, merged = (int(n) for n in done.stdout.split()[-2:])
            return f"{dropped} dropped, {merged} merged" if dropped and merged else ""

        wait_until(retention_and_merge, timeout=90, message="no retention nor merge in the demo")
    except BaseException:
        save_screenshot(page, "journey-failure")
        raise
    finally:
        context.close()


def explained(site: Site, page, predicate, what: str, timeout: float = 150):
    """Wait for ``predicate``; on timeout, say what the dashboard and the processes showed."""
    try:
        return wait_until(predicate, timeout=timeout, message=f"no {what} on the dashboard")
    except AssertionError as error:
        raise AssertionError(
            f"{error}\n--- dashboard:\n{page.inner_text('main')[-2000:]}"
            f"\n--- processes:\n{site.honcho.log()[-4000:]}"
        ) from None
