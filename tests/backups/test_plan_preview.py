"""The plan preview on the job page and form: the VMs and disks a job takes (excluded ones
struck out, with why), and the calendar of its next runs, each disk full or delta and why."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from backups.models import Schedule
from backups.services import plan_preview

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)  # a Monday


def test_a_rule_job_shows_what_it_takes_and_leaves_out_and_its_first_runs(
    live_pool, make_job, client
):
    pool = live_pool("lab", vms=4, tags=["web"])  # vm0 and vm2 tagged; vm1, vm3 running
    job = make_job("web", vm_selection="rule", pool=pool, vm_tags=["web"], full_interval=3)
    Schedule.objects.create(job=job, name="daily", cron="*/10 * * * *", timezone="UTC")
    Schedule.objects.create(
        job=job, name="weekly", cron="35 * * * *", timezone="UTC", force_full=True
    )
    preview = plan_preview.preview(job, now=NOON, count=6)
    taken = [vm.name for vm in preview.taken]
    assert taken == ["lab-vm0", "lab-vm2"]
    left_out = {vm.name: vm.excluded for vm in preview.vms if vm.excluded}
    assert left_out == {"lab-vm1": "not tagged web", "lab-vm3": "not tagged web"}
    disks = preview.taken[0].disks
    assert [(disk.name, disk.excluded) for disk in disks] == [
        ("system", ""),
        ("scratch [NOBAK]", "its name contains [NOBAK]"),
    ]
    assert preview.size == 2 << 20  # two 1 MiB system disks; the [NOBAK] ones do not count

    plan = [(run.at.strftime("%H:%M"), run.schedule, [d.reason_code for d in run.disks])
            for run in preview.calendar]  # fmt: skip
    assert plan == [
        ("12:10", "daily", ["first_backup", "first_backup"]),
        ("12:20", "daily", ["", ""]),
        ("12:30", "daily", ["", ""]),
        ("12:35", "weekly", ["forced_by_schedule", "forced_by_schedule"]),
        ("12:40", "daily", ["", ""]),
        ("12:50", "daily", ["", ""]),
    ]
    assert (
        preview.calendar[2].disks[0].reason
        == "delta on 20260302T122000Z (2 deltas since the last full)"
    )

    page = client.get(reverse("backups:job_detail", args=[job.pk])).content.decode()
    assert "<s>lab-vm1</s>" in page and "left out: not tagged web" in page
    assert "<s>scratch [NOBAK]</s>" in page and "not backed up: its name contains [NOBAK]" in page
    assert "2 VMs taken, 2.00 MiB of disks backed up." in page
    assert "2 × full: the schedule &#x27;weekly&#x27; forces full backups" in page


def test_two_schedules_at_the_same_minute_one_is_skipped_and_the_interval_is_planned(
    live_pool, make_job
):
    pool = live_pool("lab", vms=1)
    vm = pool.vm_set.get()
    job = make_job("nightly", vms=[vm], full_interval=3)
    Schedule.objects.create(job=job, name="a-hourly", cron="0 * * * *", timezone="UTC")
    Schedule.objects.create(job=job, name="b-daily", cron="0 13 * * *", timezone="UTC")
    preview = plan_preview.preview(job, now=NOON, count=5)
    rows = [(run.at.strftime("%H:%M"), run.schedule, run.skipped[:39]) for run in preview.calendar]
    assert rows == [
        ("13:00", "a-hourly", ""),
        ("13:00", "b-daily", "skipped: the schedule 'a-hourly' starts"),
        ("14:00", "a-hourly", ""),
        ("15:00", "a-hourly", ""),
        ("16:00", "a-hourly", ""),
    ]
    codes = [run.disks[0].reason_code for run in preview.calendar if not run.skipped]
    assert codes == ["first_backup", "", "", "full_interval"]


def test_the_form_shows_the_plan_of_what_is_typed_and_names_what_is_missing(
    live_pool, make_remote, client
):
    pool = live_pool("lab", vms=2)
    remote = make_remote("nas")
    url = reverse("backups:job_plan_new")
    waiting = client.get(url, {"name": "x"}).content.decode()
    assert 'id="plan-waiting"' in waiting and "Remotes: choose at least one remote" in waiting
    fields = {
        "name": "draft",
        "mode": "delta",
        "vm_selection": "rule",
        "pool": pool.pk,
        "vm_power_state": "Running",
        "remotes": remote.pk,
        "full_interval": 0,
        "max_chain_length": 2,
        "concurrency": 2,
        "vm_timeout": 0,
        "schedules-TOTAL_FORMS": 1,
        "schedules-INITIAL_FORMS": 0,
        "schedules-0-name": "often",
        "schedules-0-cron": "*/5 * * * *",
        "schedules-0-timezone": "UTC",
        "schedules-0-enabled": "on",
        "schedules-0-retention": 7,
        "schedules-0-snapshot_retention": 0,
    }
    page = client.get(url, fields).content.decode()
    assert "<s>lab-vm0</s>" in page and "left out: Halted: the rule takes running VMs only" in page
    assert "<strong>lab-vm1</strong>" in page
    assert page.count('data-reason="chain_limit"') >= 1, "a chain of at most 2 deltas"
    assert "full: the chain of this disk reached its limit of 2 deltas" in page
    from backups.models import BackupJob

    assert not BackupJob.objects.exists(), "a preview saves nothing"


@pytest.mark.django_db(transaction=True)
def test_the_form_redraws_its_plan_as_it_is_filled_in_a_browser(
    live_pool, make_remote, logged_in_page, live_server
):
    pool = live_pool("lab", vms=2)
    make_remote("nas")
    vm = pool.vm_set.order_by("name_label").first()
    page = logged_in_page
    page.goto(f"{live_server.url}/backups/jobs/add/")
    page.wait_for_selector("#plan-waiting")  # drawn on load: the form is empty
    page.fill("#id_name", "draft")
    page.select_option("#id_vm_uuids", value=vm.uuid)
    page.check("input[name=remotes]")
    page.fill("#id_schedules-0-name", "often")
    page.fill("#id_schedules-0-cron", "*/10 * * * *")
    page.locator("#id_schedules-0-cron").dispatch_event("change")
    page.wait_for_selector("table.plan-calendar")
    assert "<s>scratch [NOBAK]</s>" in page.inner_html("table.plan-vms")
    first = page.locator("table.plan-calendar tr.plan-run").first
    assert "2 full" not in first.inner_text() and "1 full" in first.inner_text()
    from backups.models import BackupJob

    assert not BackupJob.objects.exists()
