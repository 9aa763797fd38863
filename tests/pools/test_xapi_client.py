"""pools.xapi.XapiClient against xapisim over real HTTP (and a socket that never answers)."""

from __future__ import annotations

import hashlib
import os
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
from tests.fixtures.pools import failover, urls
from tests.fixtures.processes import free_port

pytestmark = pytest.mark.timeout(60)


def client_for(sim, url=None, **kwargs) -> XapiClient:
    return XapiClient(url or sim.master_url, "root", sim.password, timeout=5, **kwargs)


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
    master_url, (member,) = urls(sim)
    with client_for(sim, url=member) as client:
        assert client.url == master_url
        assert client.get_all_records("host")
    with pytest.raises(HostIsSlave, match="is a pool member, not the master: the master is at"):
        client_for(sim, url=member, follow_master=False).login()


def test_find_master_probes_members_after_a_failover(xapisim_factory):
    sim = xapisim_factory(hosts=3)
    old_master, members = urls(sim)
    new_master = failover(sim)
    client = find_master([old_master, *members], lambda url: client_for(sim, url=url))
    try:
        assert client.url == new_master
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


def test_export_stream_reads_a_close_delimited_body_then_the_task(xapisim_factory):
    with client_for(xapisim_factory(disk_size="4M")) as client:
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
            client.http_open("GET", "/export_raw_vdi", {"vdi": vdi_ref, "format": "raw"})


def test_tls_fingerprints_are_pinned_and_trusted_on_first_use(xapisim_factory):
    sim = xapisim_factory(tls=True)
    url, _ = urls(sim)
    assert url.startswith("https://")
    actual = fetch_certificate_fingerprint(url)
    learnt = {}
    with client_for(sim, on_new_fingerprint=learnt.__setitem__) as client:
        assert client.get_all_records("host")
    assert learnt == {url: actual}

    with client_for(sim, fingerprints={url: actual}) as client:
        assert client.get_all_records("host")

    wrong = ":".join(["00"] * 32)
    with pytest.raises(TlsFingerprintMismatch) as caught:
        client_for(sim, fingerprints={url: wrong}).login()
    assert f"has fingerprint {actual}, but {wrong} is pinned" in str(caught.value)

    with pytest.raises(XapiConnectionError, match="is not trusted"):
        client_for(sim, tls_mode="ca").login()


def _disk_of(client, vm_name: str) -> str:
    vm = next(r for r in client.get_all_records("VM").values() if r["name_label"] == vm_name)
    vbds = [client.call("VBD.get_record", vbd) for vbd in vm["VBDs"]]
    return min((int(v["userdevice"]), v["VDI"]) for v in vbds if v["type"] == "Disk")[1]


def test_export_follows_the_redirect_to_the_host_that_sees_the_disk(xapisim_factory):
    sim = xapisim_factory(vms=4, hosts=2, disk_size="4M")
    with client_for(sim) as client:
        vdi = _disk_of(client, "vm-00003")  # on host 1's local SR: the master answers 302
        transfer = client.export_stream("/export_raw_vdi", {"vdi": vdi, "format": "raw"}, label="x")
        body = b"".join(transfer)
        assert transfer.finish() == ""
    assert hashlib.sha256(body).hexdigest() == sim.sim("vdi_sha256", vdi)


def test_import_stream_puts_a_body_and_returns_the_task_result(xapisim_factory):
    sim = xapisim_factory(vms=1, disk_size="4M")
    size = 4 * 1024 * 1024
    data = os.urandom(size)
    with client_for(sim) as client:
        source = _disk_of(client, "vm-00000")
        target = client.call(
            "VDI.create",
            {
                "SR": client.call("VDI.get_SR", source),
                "virtual_size": str(size),
                "name_label": "restored",
                "type": "user",
                "sharable": False,
                "read_only": False,
                "other_config": {},
            },
        )
        chunks = (data[i : i + 65536] for i in range(0, size, 65536))
        result = client.import_stream(
            "/import_raw_vdi", {"vdi": target, "format": "raw"}, chunks, size, label="restore"
        )
    assert result == target
    assert sim.sim("vdi_sha256", target) == hashlib.sha256(data).hexdigest()


def test_a_streamed_import_is_sent_once_to_the_host_that_sees_the_disk(xapisim_factory):
    """The master answers 302 for a disk on another host's local SR: an empty probe finds
    that host first, so the body (a generator that can be read once) goes there whole."""
    sim = xapisim_factory(vms=4, hosts=2, disk_size="4M")
    size = 4 * 1024 * 1024
    data = os.urandom(size)
    sent = []

    def chunks():
        for offset in range(0, size, 65536):
            sent.append(offset)
            yield data[offset : offset + 65536]

    with client_for(sim) as client:
        target = _disk_of(client, "vm-00003")  # on host 1's local SR
        master_url = client.url
        assert client.handler_url("PUT", "/import_raw_vdi", {"vdi": target}) != master_url
        result = client.import_stream(
            "/import_raw_vdi", {"vdi": target, "format": "raw"}, chunks(), size, label="restore"
        )
    assert result == target
    assert len(sent) == size // 65536, "the body was not read exactly once"
    assert sim.sim("vdi_sha256", target) == hashlib.sha256(data).hexdigest()
