"""Verification on the Django side, over a real remote written by the engine from the simulator:
``backup_check`` (text, ``--json``, exit status), verdicts that survive the index's rebuilds,
a check without ``--deep`` that does not forget a flipped byte, restores refused with a clear
message, the engine's ``known_bad`` fed from the verdicts, and the pages that show them."""

from __future__ import annotations

import json
import os
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from backups.engine import JobSettings, NullProgress, RemoteAdapter, ScheduleSettings, backup_vm
from backups.models import BackupVerdict, FileVerdict, Remote, RestorePoint, Verification
from backups.services import restore_points, restores, verification
from pools.xapi import XapiClient

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]

JOB = JobSettings(id="7e000000-0000-4000-8000-000000000001", name="nightly", mode="delta")
DAILY = ScheduleSettings(id="7e000000-0000-4000-8000-0000000000a1", name="daily")


@pytest.fixture
def backed_up(xapisim_factory, tmp_path):
    """A remote row whose folder holds a full and a delta of the simulator's VM (2 disks)."""
    sim = xapisim_factory(vms=1, disk_size="16M")
    remote = Remote.objects.create(name="nas", path=str(tmp_path / "nas"))
    adapter = RemoteAdapter(remote.path, remote_id=str(remote.uuid), name="nas")
    with XapiClient(sim.url, "root", sim.password, timeout=20) as client:
        vm = next(r for r in client.get_all_records("VM").values() if r["name_label"] == "vm-00000")
        outcomes = []
        for round_ in range(2):
            if round_:
                vdi = client.call("VBD.get_VDI", vm["VBDs"][0])
                sim.sim("vdi_write_random", vdi, "2", "5")
            sim.sim("coalesce")
            outcome = backup_vm(
                client,
                vm["uuid"],
                job=JOB,
                schedule=DAILY,
                remotes=[adapter],
                progress=NullProgress(),
                holder="test",
            )
            assert outcome.status == "success", outcome.error
            outcomes.append(outcome)
    restore_points.rebuild(remote)
    return remote, adapter, outcomes


def flip_byte(path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) - 512 - 4096)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0x01]))


def backup_check(*args: str) -> tuple[str, str | None]:
    """``backup_check`` in this process: (stdout, the CommandError's message or None)."""
    out = StringIO()
    try:
        call_command("backup_check", *args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), None


def test_backup_check_passes_a_sound_remote_and_prints_json(backed_up) -> None:
    remote, _adapter, (full, delta) = backed_up
    out, error = backup_check("--remote", "nas", "--deep", "--json")
    assert error is None, out
    data = json.loads(out)
    assert data["ok"] is True
    [checked] = data["remotes"]
    assert set(checked) >= {"remote", "verification", "status", "deep", "backups", "files"}
    assert (checked["remote"], checked["status"], checked["deep"]) == ("nas", "passed", True)
    assert [b["timestamp"] for b in checked["backups"]] == [full.timestamp, delta.timestamp]
    assert all(b["ok"] and b["problems"] == [] for b in checked["backups"])
    assert {f["content"] for f in checked["files"]} == {"ok"}
    assert checked["bytes_read"] == sum(f["size"] for f in checked["files"]) > 0
    verification_row = Verification.objects.get(pk=checked["verification"])
    assert verification_row.task is not None and verification_row.task.status == "success"
    assert verification_row.task.kind == "verify"
    assert BackupVerdict.objects.filter(remote=remote, ok=True).count() == 2


def test_a_flipped_byte_fails_the_deep_check_and_its_verdict_survives_the_index(
    backed_up,
) -> None:
    remote, adapter, (full, delta) = backed_up
    rotten = full.disks[0].files[str(remote.uuid)]
    flip_byte(adapter.path(rotten))

    out, error = backup_check("--remote", "nas")
    assert error is None, "its structure is sound: only reading it finds the flip"
    out, error = backup_check("--remote", "nas", "--deep")
    assert error == "2 backup(s) failed verification"
    assert f"FAILED {full.timestamp}" in out and f"- {rotten}: its SHA-256 is " in out

    # The index is rebuilt from the remote (rows deleted and made again): verdicts stay.
    RestorePoint.objects.all().delete()
    restore_points.rebuild(remote)
    point = RestorePoint.objects.get(remote=remote, timestamp=full.timestamp)
    why = verification.refusal(point)
    assert why is not None and why.startswith(
        f"backup {full.timestamp} of vm-00000 on remote nas failed its last verification ("
    )
    assert f": {rotten}: its SHA-256 is " in why
    assert why.endswith(
        "; it is not restored: restore another backup, or run backup_check again once the "
        "remote is repaired"
    )
    with pytest.raises(restores.RestoreRefused) as refused:
        restores.request(point, "disk-file", vdi_uuid=full.disks[0].vdi_uuid)
    assert (refused.value.field, str(refused.value)) == ("point", why)
    assert not point.restores.exists(), "nothing was recorded"

    # A check that does not read the files keeps what the deep one found in their bytes.
    out, error = backup_check("--remote", "nas")
    assert error == "2 backup(s) failed verification"
    assert FileVerdict.objects.get(remote=remote, path=rotten).content == "mismatch"

    # The engine's hook: the rotten file, and nothing else, is known bad.
    known_bad = verification.known_bad([remote])
    assert known_bad(str(remote.uuid), rotten)
    assert not known_bad(str(remote.uuid), delta.disks[0].files[str(remote.uuid)])

    # The file is put right (here: the byte flipped back): a deep check clears the verdicts.
    flip_byte(adapter.path(rotten))
    out, error = backup_check("--remote", "nas", "--deep")
    assert error is None, out
    assert verification.refusal(point) is None


def test_a_vhd_that_fails_its_check_is_found_without_deep(backed_up) -> None:
    remote, adapter, (full, delta) = backed_up
    broken = delta.disks[1].files[str(remote.uuid)]
    with open(adapter.path(broken), "r+b") as handle:
        handle.truncate(os.path.getsize(adapter.path(broken)) - 700)
    out, error = backup_check("--vm", full.vm_uuid)
    assert error == "1 backup(s) failed verification"
    assert f"FAILED {delta.timestamp}" in out and f"ok     {full.timestamp}" in out
    verdict = BackupVerdict.objects.get(remote=remote, path=delta.metadata[str(remote.uuid)])
    assert not verdict.ok and all(p.startswith(f"{broken}: ") for p in verdict.problems)


def test_backup_check_names_the_option_to_fix(backed_up) -> None:
    assert backup_check("--vm", "web")[1] == "--vm: 'web' is not a VM uuid"
    assert backup_check("--remote", "nope")[1] == "--remote: no remote 'nope' (remotes: nas)"
    assert not Verification.objects.exists()


def test_the_pages_show_the_verdicts_and_the_chains(backed_up, client) -> None:
    remote, adapter, (full, delta) = backed_up
    point = RestorePoint.objects.get(remote=remote, timestamp=delta.timestamp)
    page = client.get(reverse("backups:point_detail", args=[point.pk])).content.decode()
    assert "not verified" in page and "chain inferred from the index" in page
    rotten = full.disks[0].files[str(remote.uuid)]
    assert page.count(f"<code>{rotten}</code>") == 1, "the delta's chain ends in the full"

    flip_byte(adapter.path(rotten))
    backup_check("--deep")
    page = client.get(reverse("backups:point_detail", args=[point.pk])).content.decode()
    assert "failed verification" in page and "chain inferred" not in page
    assert f"{rotten}: its SHA-256 is " in page
    assert "SHA-256 differs from the recorded one" in page
    assert "never the base of a delta" in page

    listing = client.get(reverse("backups:vm_points", args=[point.vm_uuid])).content.decode()
    assert listing.count("failed verification") == 2
    assert listing.count("not restorable: it failed its last verification") == 2
    remote_page = client.get(reverse("backups:remote_detail", args=[remote.pk])).content.decode()
    assert remote_page.count("failed verification") == 2
    checked = Verification.objects.latest("pk")
    assert f'href="{checked.get_absolute_url()}"' in remote_page
    detail = client.get(checked.get_absolute_url()).content.decode()
    assert "Backups that failed" in detail and f"{rotten}: its SHA-256 is " in detail


def test_the_point_page_queues_checks_for_those_who_may(backed_up, client_with) -> None:
    remote, _adapter, (_full, delta) = backed_up
    point = RestorePoint.objects.get(remote=remote, timestamp=delta.timestamp)
    url = reverse("backups:point_verify", args=[point.pk])
    viewer = client_with("backups.view_restorepoint")
    assert "Verify this VM" not in viewer.get(point.get_absolute_url()).content.decode()
    assert viewer.post(url, {"deep": "on"}).status_code == 403
    operator = client_with("backups.view_restorepoint", "backups.verify_restorepoint")
    assert "Verify this VM" in operator.get(point.get_absolute_url()).content.decode()
    response = operator.post(url, {"deep": "on"})
    checked = Verification.objects.get()
    assert response.status_code == 302 and response["Location"] == checked.get_absolute_url()
    assert (checked.deep, checked.vm_uuids, checked.status) == (True, [point.vm_uuid], "pending")
    response = operator.post(
        reverse("backups:point_health_check", args=[point.pk]), {"sr": "nope", "timeout": "60"}
    )
    assert response.status_code == 302
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages[-1] == "SR: no SR with uuid 'nope' in any pool's cache"


def test_a_quick_check_forgets_the_content_of_a_file_rewritten_since(backed_up) -> None:
    """A merge rewrites a file: its old SHA-256 verdict no longer says anything about it."""
    remote, adapter, (full, _delta) = backed_up
    rotten = full.disks[0].files[str(remote.uuid)]
    flip_byte(adapter.path(rotten))
    assert backup_check("--deep")[1] == "2 backup(s) failed verification"
    flip_byte(adapter.path(rotten))  # rewritten (here: put back): a new modification time
    stat = adapter.path(rotten).stat()
    os.utime(adapter.path(rotten), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    out, error = backup_check()
    assert error is None, out
    verdict = FileVerdict.objects.get(remote=remote, path=rotten)
    assert (verdict.ok, verdict.content, verdict.sha256) == (True, "unchecked", "")


def test_a_redelivered_check_whose_process_died_is_interrupted(backed_up) -> None:
    from backups.services import check_claims

    remote = backed_up[0]
    row = verification.request(remote, queue=False)
    assert verification.run(row.pk) == "passed"
    assert verification.run(row.pk) == "not claimed", "done once"
    dead = verification.request(remote, queue=False)
    Verification.objects.filter(pk=dead.pk).update(status="running", worker="nowhere:1")
    assert check_claims.claim(Verification, dead.pk) is None
    dead.refresh_from_db()
    assert dead.status == "running", "another host's process: its heartbeat decides"
    import socket

    Verification.objects.filter(pk=dead.pk).update(worker=f"{socket.gethostname()}:999999999")
    assert check_claims.claim(Verification, dead.pk) is None
    dead.refresh_from_db()
    assert dead.status == "interrupted"
    assert dead.message == f"interrupted: the process doing it ({dead.worker}) died"


def test_a_file_without_a_recorded_checksum_is_compared_with_its_first_deep_read(
    backed_up,
) -> None:
    """Xen Orchestra records no SHA-256, and a merge blanks the one it rewrites: a deep check
    then compares the file with what an earlier deep check read in it (bit rot changes neither
    the size nor the modification time)."""
    remote, adapter, (full, delta) = backed_up
    for outcome in (full, delta):
        path = adapter.path(outcome.metadata[str(remote.uuid)])
        data = json.loads(path.read_text())
        for disk in data["xoweb"]["disks"].values():
            disk["sha256"] = ""
        path.write_text(json.dumps(data))
    rotten = full.disks[0].files[str(remote.uuid)]
    assert backup_check("--deep")[1] is None
    first = FileVerdict.objects.get(remote=remote, path=rotten)
    assert first.content == "no-checksum" and len(first.sha256) == 64

    assert backup_check("--deep")[1] is None
    assert FileVerdict.objects.get(remote=remote, path=rotten).content == "ok"

    stat = adapter.path(rotten).stat()
    flip_byte(adapter.path(rotten))
    os.utime(adapter.path(rotten), ns=(stat.st_atime_ns, stat.st_mtime_ns))  # as bit rot does
    out, error = backup_check("--deep")
    assert error == "2 backup(s) failed verification"
    assert f"- {rotten}: its SHA-256 is " in out and "though its size and modification" in out
    for _again in range(2):  # the first read stays the reference: it is still found
        assert backup_check("--deep")[1] == "2 backup(s) failed verification"
    verdict = FileVerdict.objects.get(remote=remote, path=rotten)
    assert (verdict.content, verdict.sha256) == ("mismatch", first.sha256)


def test_the_remote_page_queues_a_verification_of_all_its_backups(backed_up, client_with) -> None:
    remote = backed_up[0]
    operator = client_with("backups.view_remote", "backups.verify_restorepoint")
    page = operator.get(reverse("backups:remote_detail", args=[remote.pk])).content.decode()
    assert "Verify its backups" in page and "No verification yet." in page
    response = operator.post(reverse("backups:remote_verify", args=[remote.pk]))
    checked = Verification.objects.get()
    assert response["Location"] == checked.get_absolute_url()
    assert (checked.remote, checked.deep, checked.vm_uuids, checked.trigger) == (
        remote,
        False,
        [],
        "page",
    )
    assert verification.run(checked.pk) == "passed"
    detail = operator.get(checked.get_absolute_url())
    assert detail.status_code == 403, "a verification's page needs its own view permission"
    viewer = client_with("backups.view_verification")
    assert (
        "2 backup(s) of 1 VM(s) checked: all sound"
        in viewer.get(checked.get_absolute_url()).content.decode()
    )
