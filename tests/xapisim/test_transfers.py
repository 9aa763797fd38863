"""Transfers attach their disks to the control domain (docs/xapi.md §9.7), and report progress
by whole percents (docs/xapi.md §8.7)."""

from __future__ import annotations

import threading
import time

import pytest
import XenAPI

from tests.xapisim.helpers import export, request, sha256_hex, vm_by_name, wait_task

MIB = 1024 * 1024


@pytest.fixture
def slow(xapisim_factory):
    """(simulator, session, dom0, a 6 MiB disk with data and a snapshot of it); transfers
    throttled to 4 MiB/s so they can be watched."""
    sim = xapisim_factory(vms=1, disk_size="16M")
    session = sim.session()
    x = session.xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    disk = sim.sim("vdi_create", sr, "watched", "6M")
    sim.sim("vdi_write_random", disk, 3, "transfer")
    base = x.VDI.snapshot(disk)
    sim.sim("vdi_write_random", disk, 1, "delta")
    dom0 = x.host.get_control_domain(x.pool.get_master(x.pool.get_all()[0]))
    sim.sim("set_rate_limit", str(4 * MIB))
    return sim, session, dom0, disk, base


def in_background(target) -> tuple[threading.Thread, list]:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(target()))
    thread.start()
    return thread, out


def test_an_export_plugs_the_disk_and_its_base_into_dom0(slow) -> None:
    sim, session, dom0, disk, base = slow
    x = session.xenapi
    assert vm_by_name(session, "vm-00000")  # a guest is there too; dom0 is not it
    token = getattr(x.event, "from")(["vbd"], "", 0.1)["token"]
    thread, out = in_background(lambda: export(sim.url, session.handle, disk, "raw", base=base))
    time.sleep(0.5)
    plugged = {}
    for vdi in (disk, base):
        (vbd,) = x.VDI.get_VBDs(vdi)
        record = x.VBD.get_record(vbd)
        plugged[vdi] = vbd
        assert (record["VM"], record["mode"], record["currently_attached"]) == (dom0, "RO", True)
        assert record["device"].startswith("xvd")
    live = getattr(x.event, "from")(["vbd"], token, 1.0)
    added = {e["ref"]: e["snapshot"]["VM"] for e in live["events"] if e["operation"] == "add"}
    assert added == {vbd: dom0 for vbd in plugged.values()}
    with pytest.raises(XenAPI.Failure) as in_use:
        x.VDI.destroy(base)
    assert in_use.value.details == ["VDI_IN_USE", base, "destroy"]
    thread.join()
    status, headers, _body = out[0]
    assert status == 200 and wait_task(session, headers["task-id"])["status"] == "success"
    assert x.VDI.get_VBDs(disk) == [] and x.VDI.get_VBDs(base) == []
    assert x.VM.get_VBDs(dom0) == []
    after = getattr(x.event, "from")(["vbd"], live["token"], 1.0)["events"]
    assert {e["ref"] for e in after if e["operation"] == "del"} == set(plugged.values())
    x.VDI.destroy(base)


def test_import_into_a_read_only_vdi_fails_after_the_200(slow) -> None:
    sim, session, _dom0, _disk, _base = slow
    x = session.xenapi
    sim.sim("set_rate_limit", "0")
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    frozen = x.VDI.create(
        {
            "SR": sr,
            "virtual_size": str(MIB),
            "type": "user",
            "sharable": False,
            "read_only": True,
            "other_config": {},
        }
    )
    task = x.task.create("import", "")
    status, headers, body = request(
        sim.url,
        "PUT",
        f"/import_raw_vdi?session_id={session.handle}&vdi={frozen}&format=raw&task_id={task}",
        body=b"x" * 4096,
        headers={"Content-Length": "4096"},
    )
    assert (status, headers["task-id"]) == (200, task)
    assert b"Server_error(VDI_READONLY" in body
    record = wait_task(session, task)
    assert (record["status"], record["error_info"]) == ("failure", ["VDI_READONLY", frozen])
    assert x.VDI.get_VBDs(frozen) == []


def test_progress_moves_by_whole_percents_and_cancel_does_not_stop_it(slow) -> None:
    sim, session, _dom0, disk, _base = slow
    x = session.xenapi
    task = x.task.create("watched export", "")
    thread, out = in_background(
        lambda: export(sim.url, session.handle, disk, "raw", extra=f"&task_id={task}")
    )
    seen = set()
    while thread.is_alive():
        seen.add(x.task.get_progress(task))
        if len(seen) == 3:
            x.task.cancel(task)
        time.sleep(0.03)
    thread.join()
    status, _, body = out[0]
    assert status == 200 and sha256_hex(body) == sim.sim("vdi_sha256", disk)
    assert len(seen) > 5
    assert all(abs(p * 100 - round(p * 100)) < 1e-6 for p in seen), sorted(seen)
    record = wait_task(session, task)
    assert (record["status"], record["progress"]) == ("success", 1.0)


def test_import_progress_moves_by_whole_percents(slow) -> None:
    sim, session, _dom0, disk, _base = slow
    x = session.xenapi
    payload = bytes(range(256)) * (6 * MIB // 256)
    task = x.task.create("watched import", "")
    thread, out = in_background(
        lambda: request(
            sim.url,
            "PUT",
            f"/import_raw_vdi?session_id={session.handle}&vdi={disk}&format=raw&task_id={task}",
            body=payload,
            headers={"Content-Length": str(len(payload))},
        )
    )
    seen = set()
    while thread.is_alive():
        seen.add(x.task.get_progress(task))
        time.sleep(0.03)
    thread.join()
    assert out[0][0] == 200
    assert wait_task(session, task)["status"] == "success"
    assert sim.sim("vdi_sha256", disk) == sha256_hex(payload)
    assert len(seen) > 5
    assert all(abs(p * 100 - round(p * 100)) < 1e-6 for p in seen), sorted(seen)
