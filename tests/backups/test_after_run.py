"""What a schedule asks for after its runs: the options on the form and the command (the field
to fix named), and the checks recorded when a run ends — one verification per remote, one
restore test per VM with a new backup — queued once."""

from __future__ import annotations

import pytest

from backups.choices import RunStatus, Trigger, VmBackupStatus
from backups.forms import ScheduleForm
from backups.models import BackupRun, HealthCheck, Schedule, Verification, VmBackup
from backups.services import after_run

pytestmark = pytest.mark.django_db


def schedule_data(**fields) -> dict:
    data = {
        "name": "daily",
        "cron": "0 1 * * *",
        "timezone": "UTC",
        "enabled": "on",
        "retention": "7",
        "snapshot_retention": "0",
    }
    data.update(fields)
    return data


def test_the_form_names_the_field_to_fix(make_job) -> None:
    job = make_job("nightly")
    form = ScheduleForm(data=schedule_data(health_check="on"), instance=Schedule(job=job))
    assert not form.is_valid()
    assert form.errors == {"health_check_sr": ["a restore test needs an SR: choose one"]}
    form = ScheduleForm(
        data=schedule_data(health_check="on", health_check_sr="nope", verify="deeper"),
        instance=Schedule(job=job),
    )
    assert not form.is_valid()
    assert form.errors["health_check_sr"][0] == (
        "no SR with uuid nope that can hold disks in the pools' cache (is its pool added and "
        "connected?)"
    )
    assert "verify" in form.errors
    assert not Schedule.objects.exists()
    form = ScheduleForm(data=schedule_data(verify="deep"), instance=Schedule(job=job))
    assert form.is_valid(), form.errors
    schedule = form.save()
    assert (schedule.verify, schedule.health_check, schedule.health_check_timeout) == (
        "deep",
        False,
        600,
    )


def test_schedule_add_names_the_option(make_job, capsys) -> None:
    from django.core.management import CommandError, call_command

    make_job("nightly")
    with pytest.raises(CommandError) as refused:
        call_command("schedule_add", "nightly", "--cron", "0 1 * * *", "--health-check-sr", "x")
    assert str(refused.value).startswith("schedule not added: --health-check-sr: no SR with uuid x")


def ended_run(job, schedule, *vms: tuple[str, dict]) -> BackupRun:
    remotes = {str(remote.uuid): remote.name for remote in job.remotes.all()}
    run = BackupRun.objects.create(
        job=job, schedule=schedule, trigger=Trigger.SCHEDULE, status=RunStatus.SUCCESS,
        remotes=remotes,
    )  # fmt: skip
    for uuid, metadata in vms:
        VmBackup.objects.create(
            run=run,
            vm_uuid=uuid,
            vm_name=f"vm-{uuid[:4]}",
            status=VmBackupStatus.SUCCESS if metadata else VmBackupStatus.FAILED,
            timestamp="20261129T010000Z",
            metadata=metadata,
        )
    return run


def test_a_run_of_a_schedule_without_checks_records_none(make_job) -> None:
    job = make_job("nightly")
    schedule = Schedule.objects.create(job=job, name="daily", cron="0 1 * * *")
    run = ended_run(job, schedule, ("aaaa-1", {"x": "p.json"}))
    assert after_run.run_ended(run.pk) == 0
    assert not Verification.objects.exists() and not HealthCheck.objects.exists()


def test_a_run_records_a_verification_per_remote_and_a_test_per_new_backup(
    make_job, make_remote, django_capture_on_commit_callbacks
) -> None:
    nas, usb = make_remote("nas"), make_remote("usb")
    job = make_job("nightly", remotes=[nas, usb])
    schedule = Schedule.objects.create(
        job=job, name="daily", cron="0 1 * * *", verify="deep", health_check=True,
        health_check_sr="sr-uuid", health_check_timeout=45,
    )  # fmt: skip
    both = {str(nas.uuid): "xo-vm-backups/a/1.json", str(usb.uuid): "xo-vm-backups/a/2.json"}
    run = ended_run(
        job,
        schedule,
        ("aaaa-1", both),
        ("bbbb-2", {str(usb.uuid): "xo-vm-backups/b/1.json"}),
        ("cccc-3", {}),  # failed: nothing new to prove
    )
    with django_capture_on_commit_callbacks() as queued:
        assert after_run.run_ended(run.pk) == 4
    assert len(queued) == 1, "one task does them all, in order"
    checks = {v.remote.name: v for v in Verification.objects.filter(run=run)}
    assert checks["nas"].vm_uuids == ["aaaa-1"] and checks["usb"].vm_uuids == ["aaaa-1", "bbbb-2"]
    assert all(
        v.deep and v.trigger == "schedule" and v.status == "pending" for v in checks.values()
    )
    tests = {t.vm_uuid: t for t in HealthCheck.objects.filter(run=run)}
    assert set(tests) == {"aaaa-1", "bbbb-2"}
    assert (tests["aaaa-1"].remote, tests["aaaa-1"].backup_path) == (nas, "xo-vm-backups/a/1.json")
    assert (tests["bbbb-2"].remote, tests["bbbb-2"].sr_uuid, tests["bbbb-2"].timeout) == (
        usb,
        "sr-uuid",
        45,
    )


class Died(BaseException):
    """The process ending a run killed where it stands (no ``except Exception`` catches it)."""


def test_a_run_is_never_ended_without_its_checks_whatever_dies(
    make_job, make_remote, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from backups.services import runs, sweep

    nas = make_remote("nas")
    job = make_job("nightly", remotes=[nas])
    schedule = Schedule.objects.create(job=job, name="daily", cron="0 1 * * *", verify="check")
    run = ended_run(job, schedule, ("aaaa-1", {str(nas.uuid): "xo-vm-backups/a/1.json"}))
    BackupRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    recording = after_run.run_ended

    def dies(run_id: int) -> int:
        recording(run_id)  # its rows are written, then the process dies before the commit
        raise Died

    monkeypatch.setattr(after_run, "run_ended", dies)
    with django_capture_on_commit_callbacks(execute=False) as queued, pytest.raises(Died):
        runs.finish_if_done(run.pk)
    assert queued == [], "nothing was sent: no report, no check"
    assert BackupRun.objects.get(pk=run.pk).status == "running", "the end was rolled back"
    assert not Verification.objects.exists()

    monkeypatch.setattr(after_run, "run_ended", recording)
    with django_capture_on_commit_callbacks() as queued:
        assert sweep.sweep().finished == 1
    run.refresh_from_db()
    assert run.status == "success" and run.ended is not None
    [check] = Verification.objects.filter(run=run)
    assert check.vm_uuids == ["aaaa-1"] and check.status == "pending"
    assert len(queued) == 1, "the checks' task, queued once"
