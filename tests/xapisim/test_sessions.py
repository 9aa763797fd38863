"""Sessions (docs/xapi.md §2, §5, §6, §7.5): login, logout, HOST_IS_SLAVE, restart and failover."""

from __future__ import annotations

import http.client
import time
import xmlrpc.client

import pytest
import XenAPI

from tests.xapisim.helpers import call_xml, post_xml


def test_bad_credentials(xapisim) -> None:
    session = XenAPI.Session(xapisim.url)
    with pytest.raises(XenAPI.Failure) as failure:
        session.login_with_password("root", "nope")
    assert failure.value.details == [
        "SESSION_AUTHENTICATION_FAILED",
        "root",
        "Authentication failure",
    ]
    with pytest.raises(XenAPI.Failure) as other_user:
        session.login_with_password("admin", "xapisim")
    assert other_user.value.details == [
        "SESSION_AUTHENTICATION_FAILED",
        "admin",
        "Authentication failure",
    ]


def test_password_option(xapisim_factory) -> None:
    sim = xapisim_factory(vms=0, password="s3cret")
    session = sim.session()
    assert session.xenapi.pool.get_all()
    with pytest.raises(XenAPI.Failure):
        XenAPI.Session(sim.url).login_with_password("root", "xapisim")


def test_login_with_two_to_four_args_and_logout(xapisim) -> None:
    for args in (
        ("root", "xapisim"),
        ("root", "xapisim", "1.0"),
        ("root", "xapisim", "1.0", "xoweb"),
    ):
        session = XenAPI.Session(xapisim.url)
        session.login_with_password(*args)
        handle = session.handle
        assert session.xenapi.session.get_originator(handle) == (args[3] if len(args) == 4 else "")
        session.xenapi.session.logout()
        assert session.handle is None
        _, _, body = post_xml(xapisim.url, call_xml("VM.get_all", handle))
        assert xmlrpc.client.loads(body.decode())[0][0]["ErrorDescription"] == [
            "SESSION_INVALID",
            handle,
        ]


def test_unknown_session_is_session_invalid(xapisim) -> None:
    _, _, body = post_xml(xapisim.url, call_xml("VM.get_all", "OpaqueRef:bogus"))
    assert xmlrpc.client.loads(body.decode())[0][0]["ErrorDescription"] == [
        "SESSION_INVALID",
        "OpaqueRef:bogus",
    ]


def test_member_answers_host_is_slave_with_the_coordinator_address(xapisim_factory) -> None:
    sim = xapisim_factory(vms=2, hosts=3)
    assert len(sim.member_urls) == 2
    for url in sim.member_urls:
        with pytest.raises(XenAPI.Failure) as failure:
            XenAPI.Session(url).login_with_password("root", "xapisim")
        assert failure.value.details == ["HOST_IS_SLAVE", f"127.0.0.1:{sim.port}"]
    session = sim.session()
    addresses = sorted(r["address"] for r in session.xenapi.host.get_all_records().values())
    assert addresses == [f"127.0.0.1:{sim.port + i}" for i in range(3)]


def test_toolstack_restart_wipes_sessions_and_tasks(xapisim) -> None:
    session = xapisim.session()
    old_handle = session.handle
    task = session.xenapi.task.create("mine", "")
    assert session.xenapi.task.get_status(task) == "pending"
    xapisim.sim("restart_toolstack")
    # The SDK sees SESSION_INVALID and silently logs in again (docs/xapi.md §5).
    assert session.xenapi.VM.get_all()
    assert session.handle != old_handle
    with pytest.raises(XenAPI.Failure) as failure:
        session.xenapi.task.get_record(task)
    assert failure.value.details == ["HANDLE_INVALID", "task", task]
    _, _, body = post_xml(xapisim.url, call_xml("VM.get_all", old_handle))
    assert xmlrpc.client.loads(body.decode())[0][0]["ErrorDescription"] == [
        "SESSION_INVALID",
        old_handle,
    ]


def test_failover_moves_the_coordinator(xapisim_factory) -> None:
    sim = xapisim_factory(vms=2, hosts=3)
    session = sim.session()
    pool_ref = session.xenapi.pool.get_all()[0]
    member = next(
        ref
        for ref, r in session.xenapi.host.get_all_records().items()
        if r["address"] == f"127.0.0.1:{sim.port + 1}"
    )
    address = sim.sim("failover", member)
    assert address == f"127.0.0.1:{sim.port + 1}"
    # The old coordinator refuses connections; the old session is gone.
    with pytest.raises(ConnectionRefusedError):
        XenAPI.Session(sim.url).login_with_password("root", "xapisim")
    _, _, body = post_xml(sim.member_urls[0], call_xml("VM.get_all", session.handle))
    assert xmlrpc.client.loads(body.decode())[0][0]["ErrorDescription"] == [
        "SESSION_INVALID",
        session.handle,
    ]
    new = XenAPI.Session(sim.member_urls[0])
    new.login_with_password("root", "xapisim")
    assert new.xenapi.pool.get_master(pool_ref) == member
    with pytest.raises(XenAPI.Failure) as slave:
        XenAPI.Session(sim.member_urls[1]).login_with_password("root", "xapisim")
    assert slave.value.details == ["HOST_IS_SLAVE", f"127.0.0.1:{sim.port + 1}"]


def test_members_without_coordinator_answer_host_still_booting(xapisim_factory) -> None:
    sim = xapisim_factory(vms=1, hosts=2)
    master = sim.session().xenapi.pool.get_master(sim.session().xenapi.pool.get_all()[0])
    sim.sim("host_down", master)
    with pytest.raises(XenAPI.Failure) as booting:
        XenAPI.Session(sim.member_urls[0]).login_with_password("root", "xapisim")
    assert booting.value.details == ["HOST_STILL_BOOTING"]
    with pytest.raises((ConnectionRefusedError, http.client.RemoteDisconnected)):
        XenAPI.Session(sim.url).login_with_password("root", "xapisim")


def test_coordinator_down_and_back(xapisim_factory) -> None:
    sim = xapisim_factory(vms=1, hosts=2)
    x = sim.session().xenapi
    master = x.pool.get_master(x.pool.get_all()[0])
    sim.sim("host_down", master)
    with pytest.raises(ConnectionRefusedError):
        XenAPI.Session(sim.url).login_with_password("root", "xapisim")
    sim.sim("host_up", master)  # goes through the member while the coordinator is down
    assert sim.session().xenapi.pool.get_master(x.pool.get_all()[0]) == master


def test_toolstack_restart_with_downtime(xapisim) -> None:
    session = xapisim.session()
    xapisim.sim("restart_toolstack", 1.0)
    with pytest.raises(ConnectionRefusedError):
        XenAPI.Session(xapisim.url).login_with_password("root", "xapisim")
    deadline = time.monotonic() + 10
    while True:
        try:
            assert session.xenapi.pool.get_all()  # the SDK logs in again by itself
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "the pool did not come back"
            time.sleep(0.1)
