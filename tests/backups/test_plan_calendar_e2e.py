"""The plan preview's calendar agrees with what the runs then do.

A job with a force-full schedule, a full interval and a chain limit backs up a simulated VM
(two disks and a [NOBAK] one) with a real worker. A test clock walks minute by minute from a
fixed moment and fires each schedule whose cron matches that minute (what beat does, without
waiting for the wall clock); each firing is a real run. Every run's disks must be what the
calendar, computed before the first of them, said: full or delta, and the same reason. Then the
job's chain limit is lowered and the calendar, computed again from the state the runs left,
must agree once more.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from tests.backups.test_backup_e2e import WORKER_ENV, backup_site  # noqa: F401 (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

START = datetime(2026, 3, 2, 12, 0, 30, tzinfo=UTC)


def fire(schedules, start: datetime, count: int) -> list[tuple[datetime, object]]:
    """The test clock: minute after minute from ``start``, the schedules whose cron matches
    (in their own time zone), until ``count`` firings."""
    fired, minute = [], start.replace(second=0, microsecond=0)
    while len(fired) < count:
        minute += timedelta(minutes=1)
        for schedule in schedules:
            if croniter.match(schedule.cron, minute.astimezone(ZoneInfo(schedule.timezone))):
                fired.append((minute, schedule))
    return fired


def run_and_compare(job, sim, preview, fired, wait_for) -> list[list[tuple[str, str]]]:
    """Run each firing for real; return per run the (mode, reason code) of each disk, and
    check them against the calendar."""
    from backups.choices import Trigger
    from backups.models import BackupRun, VmBackupDisk
    from backups.services import runs

    assert [(run.at, run.schedule) for run in preview.calendar] == [
        (moment, schedule.name) for moment, schedule in fired
    ], "the calendar lists the moments the schedules fire"
    session = sim.session()
    done = []
    for (moment, schedule), planned in zip(fired, preview.calendar, strict=True):
        # Minutes pass between two firings: the guest writes, and the storage manager
        # coalesces what the last run's snapshot retention freed.
        for disk in planned.disks:
            sim.sim("vdi_write_random", session.xenapi.VDI.get_by_uuid(disk.disk.vdi_uuid), 2)
        sim.sim("coalesce")
        run = runs.request_run(job, trigger=Trigger.SCHEDULE, schedule=schedule)
        ended = wait_for(
            lambda run=run: BackupRun.objects.filter(
                pk=run.pk, status__in=["success", "partial", "failed", "skipped"]
            ).first(),
            timeout=90,
            message=f"the run of {schedule.name} at {moment:%H:%M} never ended",
        )
        assert ended.status == "success", ended.message
        actual = {
            row.vdi_uuid: (row.mode, row.reason_code)
            for row in VmBackupDisk.objects.filter(vm_backup__run=ended)
        }
        expected = {d.disk.vdi_uuid: (d.mode, d.reason_code) for d in planned.disks}
        assert actual == expected, f"run at {moment:%H:%M} ({schedule.name})"
        done.append(sorted(expected.values()))
    return done


def test_the_calendar_agrees_with_what_the_runs_then_did(
    backup_site,  # noqa: F811 (the fixture)
    make_remote,
    wait_for,
):
    from backups.models import BackupJob, Schedule, VmBackupDisk
    from backups.services import plan_preview
    from pools.models import VDI, VM

    sim, pool, _worker = backup_site
    vm = VM.objects.guests().get(pool=pool)
    job = BackupJob.objects.create(
        name="nightly", vm_uuids=[vm.uuid], full_interval=3, max_chain_length=5
    )
    job.remotes.set([make_remote("nas")])
    Schedule.objects.create(job=job, name="often", cron="*/10 * * * *", timezone="UTC")
    Schedule.objects.create(
        job=job, name="hourly-full", cron="35 * * * *", timezone="UTC", force_full=True
    )
    schedules = list(job.schedules.order_by("name"))

    # Before any run: the first is a full, deltas, a forced full, deltas, and the interval.
    preview = plan_preview.preview(job, now=START, count=7)
    [shown] = preview.taken
    assert [disk.excluded != "" for disk in shown.disks] == [False, False, True], "[NOBAK]"
    done = run_and_compare(job, sim, preview, fire(schedules, START, 7), wait_for)
    reasons = [{code for _mode, code in run} for run in done]
    assert reasons == [
        {"first_backup"},
        {""},
        {""},
        {"forced_by_schedule"},
        {""},
        {""},
        {"full_interval"},
    ]

    # A lower chain limit, from the middle of a chain: the calendar starts from where the
    # runs left each disk (the watcher has cached the last snapshot by then).
    last = VmBackupDisk.objects.filter(vm_backup__run__job=job).order_by("-pk").first()
    wait_for(
        lambda: VDI.objects.filter(uuid=last.snapshot_vdi_uuid).exists(),
        timeout=30,
        message="the watcher never cached the last snapshot",
    )
    BackupJob.objects.filter(pk=job.pk).update(full_interval=10, max_chain_length=1)
    job.refresh_from_db()
    later = START + timedelta(hours=1)  # 13:00:30: the chain holds 0 deltas (13:00 was a full)
    preview = plan_preview.preview(job, now=later, count=3)
    done = run_and_compare(job, sim, preview, fire(schedules, later, 3), wait_for)
    assert [{code for _mode, code in run} for run in done] == [{""}, {"chain_limit"}, {""}]

    # The expected sizes come from those runs: the last full, and the mean of recent deltas.
    preview = plan_preview.preview(job, now=later)
    disk = preview.taken[0].disks[0]
    rows = VmBackupDisk.objects.filter(vm_backup__run__job=job, vdi_uuid=disk.vdi_uuid)
    deltas = [row.bytes for row in rows.filter(mode="delta").order_by("-pk")[:5]]
    assert disk.last_full_bytes == rows.filter(mode="full").order_by("-pk")[0].bytes
    assert disk.delta_bytes == round(sum(deltas) / len(deltas))
