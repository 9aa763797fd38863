"""State in DIR survives a restart (SIGTERM) and a kill; sessions and tasks do not
(docs/xapi.md §7.5)."""

from __future__ import annotations

import time
import xmlrpc.client

import pytest
import XenAPI

from tests.xapisim.helpers import call_xml, disk_vdis, post_xml, vm_by_name


def test_restart_keeps_objects_and_disk_bytes(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    vdi = disk_vdis(session, vm)[0]
    vm_uuid = x.VM.get_uuid(vm)
    snap = x.VM.snapshot(vm, "kept")
    snap_uuid = x.VM.get_uuid(snap)
    xapisim.sim("vdi_write_random", vdi, 3, "persist")
    before = {v: xapisim.sim("vdi_sha256", v) for v in x.VDI.get_all()}
    task = x.task.create("volatile", "")
    token = getattr(x.event, "from")(["vm"], "", 0.1)["token"]
    xapisim.stop()
    xapisim.start()
    again = xapisim.session()
    y = again.xenapi
    assert y.VM.get_by_uuid(vm_uuid) == vm
    assert y.VM.get_snapshot_of(y.VM.get_by_uuid(snap_uuid)) == vm
    assert {v: xapisim.sim("vdi_sha256", v) for v in y.VDI.get_all()} == before
    with pytest.raises(XenAPI.Failure) as gone:
        y.task.get_record(task)
    assert gone.value.details == ["HANDLE_INVALID", "task", task]
    _, _, body = post_xml(xapisim.url, call_xml("VM.get_all", session.handle))
    assert xmlrpc.client.loads(body.decode())[0][0]["ErrorDescription"] == [
        "SESSION_INVALID",
        session.handle,
    ]
    later = getattr(y.event, "from")(["vm"], "", 0.1)["token"]
    assert later >= token  # generations keep growing across restarts


def test_kill_loses_at_most_the_last_moments(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00001")
    x.VM.set_name_label(vm, "survives-a-kill")
    vdi = disk_vdis(session, vm)[0]
    xapisim.sim("vdi_write_random", vdi, 2, "kill")
    digest = xapisim.sim("vdi_sha256", vdi)
    time.sleep(1.0)
    xapisim.kill()
    xapisim.start()
    y = xapisim.session().xenapi
    assert y.VM.get_name_label(vm) == "survives-a-kill"
    assert xapisim.sim("vdi_sha256", vdi) == digest
