"""pools.xapi.XapiClient against xapisim over real HTTP (and a socket that never answers)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from pools.xapi import (
    AuthenticationFailed,
    HostIsSlave,
    TlsFingerprintMismatch,
    XapiClient,
    XapiConnectionError,
    XapiFailure,
    fetch_certificate_fingerprint,
    find_master,
)
from tests.fixtures.processes import free_port

pytestmark = pytest.mark.timeout(60)


def client_for(sim, url=None, **kwargs) -> XapiClient:
    return XapiClient(url or sim.url, "root", sim.password or "xapisim", timeout=5, **kwargs)


def test_login_calls_and_logout(xapisim):
    with client_for(xapisim) as client:
        vms = client.get_all_records("VM")
        assert vms and all(ref.startswith("OpaqueRef:") for ref in vms)
        pool_ref = next(iter(client.get_all_records("pool")))
        token = client.event_inject("pool", pool_ref)
        assert len(token.split(",")[0]) == 20
    assert not client.logged_in


def test_a_member_is_followed_to_the_master(xapisim_factory):
    sim = xapisim_factory(hosts=2)
    member = sim.member_urls[0]
    with client_for(sim, url=member) as client:
        assert client.url == sim.url
        assert client.get_all_records("host")
    with pytest.raises(HostIsSlave, match="is a pool member, not the master: the master is at"):
        client_for(sim, url=member, follow_master=False).login()


def test_find_master_probes_members_after_a_failover(xapisim_factory):
    sim = xapisim_factory(hosts=3)
    sim.sim("sim.failover")
    client = find_master([sim.url, *sim.member_urls], lambda url: client_for(sim, url=url))
    try:
        assert client.url in sim.member_urls
        assert client.get_all_records("VM")
    finally:
        client.logout()


def test_bad_credentials_are_named(xapisim):
    client = XapiClient(xapisim.url, "root", "wrong password", timeout=10)
    with pytest.raises(AuthenticationFailed) as caught:
        client.login()
    assert "XAPI refused the user name or password for user 'root'" in str(caught.value)
    assert "wrong password" not in str(caught.value)


def test_refused_and_unresolvable_addresses_are_explained():
    port = free_port()
    with pytest.raises(XapiConnectionError, match=f"connection refused by http://127.0.0.1:{port}"):
        XapiClient(f"http://127.0.0.1:{port}", "root", "pw", timeout=2).login()
    with pytest.raises(XapiConnectionError, match="cannot resolve the host name 'no-such-host"):
        XapiClient("http://no-such-host.invalid", "root", "pw", timeout=2).login()


def test_every_call_has_a_timeout():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted = []
        threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(XapiConnectionError, match="did not answer in time"):
            XapiClient(f"http://127.0.0.1:{port}", "root", "pw", timeout=0.5).login()
        assert time.monotonic() - started < 3


def test_session_invalid_is_handled_and_noticed(xapisim):
    with client_for(xapisim) as client:
        client.get_all_records("VM")
        xapisim.sim("sim.restart_toolstack")
        assert client.get_all_records("VM")
        assert client.session_renewals == 1


def test_async_calls_wait_on_their_task_with_progress(xapisim):
    with client_for(xapisim) as client:
        vm_ref = next(
            ref
            for ref, vm in client.get_all_records("VM").items()
            if not (vm["is_a_template"] or vm["is_control_domain"])
        )
        seen = []
        snapshot_ref = client.call_async("VM.snapshot", vm_ref, "async snap", progress=seen.append)
        assert snapshot_ref.startswith("OpaqueRef:")
        assert client.call("VM.get_is_a_snapshot", snapshot_ref) is True
        assert seen and seen[-1] == 1.0
        # Our task was destroyed once waited on.
        pending = [
            t
            for t in client.get_all_records("task").values()
            if t["name_label"] == "Async.VM.snapshot"
        ]
        assert not pending


def test_export_stream_reads_a_close_delimited_body_then_the_task(xapisim):
    with client_for(xapisim) as client:
        vdi_ref, vdi = next(
            (ref, vdi)
            for ref, vdi in client.get_all_records("VDI").items()
            if vdi["type"] in ("user", "system")
        )
        transfer = client.export_stream(
            "/export_raw_vdi", {"vdi": vdi_ref, "format": "raw"}, label="test export"
        )
        assert transfer.response.getheader("Content-Length") is None
        size = sum(len(chunk) for chunk in transfer)
        assert size == int(vdi["virtual_size"])
        assert transfer.finish() == ""
        with pytest.raises(XapiFailure, match="HANDLE_INVALID"):
            client.call("task.get_record", transfer.task_ref)


def test_export_failures_come_from_the_task(xapisim):
    with client_for(xapisim) as client:
        vdi_ref = next(iter(client.get_all_records("VDI")))
        with pytest.raises(Exception, match=r"404|Unknown format"):
            transfer = client.export_stream(
                "/export_raw_vdi", {"vdi": vdi_ref, "format": "nonsense"}, label="bad export"
            )
            transfer.finish()


def test_http_handlers_refuse_a_dead_session(xapisim):
    with client_for(xapisim) as client:
        vdi_ref = next(iter(client.get_all_records("VDI")))
        xapisim.sim("sim.restart_toolstack")  # every session is gone
        with pytest.raises(AuthenticationFailed, match=r"SESSION_AUTHENTICATION_FAILED|refused"):
            client._http_open("GET", "/export_raw_vdi", {"vdi": vdi_ref, "format": "raw"})


def test_tls_fingerprints_are_pinned_and_trusted_on_first_use(xapisim_factory):
    sim = xapisim_factory(tls=True)
    assert sim.url.startswith("https://")
    actual = fetch_certificate_fingerprint(sim.url)
    learnt = {}
    with client_for(sim, on_new_fingerprint=learnt.__setitem__) as client:
        assert client.get_all_records("host")
    assert learnt == {sim.url: actual}

    with client_for(sim, fingerprints={sim.url: actual}) as client:
        assert client.get_all_records("host")

    wrong = ":".join(["00"] * 32)
    with pytest.raises(TlsFingerprintMismatch) as caught:
        client_for(sim, fingerprints={sim.url: wrong}).login()
    assert f"has fingerprint {actual}, but {wrong} is pinned" in str(caught.value)

    with pytest.raises(XapiConnectionError, match="is not trusted"):
        client_for(sim, tls_mode="ca").login()
