"""event.from / event.inject (docs/xapi.md §7): tokens, add/mod/del, counts, blocking, errors."""

from __future__ import annotations

import re
import threading
import time

import pytest
import XenAPI

from tests.xapisim.helpers import call_xml, post_xml, vm_by_name

TOKEN = re.compile(r"^\d{20},\d{20}$")


def event_from(
    session: XenAPI.Session, classes: list[str], token: str, timeout: float = 1.0
) -> dict:
    return getattr(session.xenapi.event, "from")(classes, token, float(timeout))


def test_empty_token_returns_everything_as_add(xapisim) -> None:
    session = xapisim.session()
    result = event_from(session, ["VM", "vdi"], "")
    assert TOKEN.match(result["token"])
    vms = session.xenapi.VM.get_all_records()
    vm_events = {e["ref"]: e for e in result["events"] if e["class"] == "vm"}
    assert set(vm_events) == set(vms)
    assert {e["operation"] for e in result["events"]} == {"add"}
    assert {e["class"] for e in result["events"]} == {"vm", "vdi"}
    some = next(iter(vm_events.values()))
    assert some["snapshot"] == vms[some["ref"]]
    assert some["timestamp"] == "0.0" and some["id"].isdigit()


def test_valid_ref_counts_cover_every_table_as_i4(xapisim) -> None:
    session = xapisim.session()
    _, _, body = post_xml(xapisim.url, call_xml("event.from", session.handle, ["task"], "", 0.1))
    text = body.decode()
    assert "<name>vm</name><value><i4>" in text
    result = event_from(session, ["task"], "", 0.1)
    counts = result["valid_ref_counts"]
    assert set(counts) >= {
        "pool",
        "host",
        "sr",
        "vdi",
        "vbd",
        "vm",
        "vif",
        "network",
        "task",
        "pbd",
        "session",
    }
    assert counts["vm"] == len(session.xenapi.VM.get_all())
    assert all(isinstance(v, int) for v in counts.values())


def test_add_mod_del_since_a_token(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    pool = x.pool.get_all()[0]
    token = x.event.inject("pool", pool)
    assert TOKEN.match(token)
    vm = vm_by_name(session, "vm-00000")
    x.VM.set_name_label(vm, "changed")
    snap = x.VM.snapshot(vm, "s1")
    short_lived = x.VM.snapshot(vm, "s2")
    x.VM.set_name_description(short_lived, "modified")
    x.VM.destroy(short_lived)
    result = event_from(session, ["vm"], token)
    by_ref = {}
    for event in result["events"]:
        assert event["ref"] not in by_ref, "one event per object"
        by_ref[event["ref"]] = event
    assert by_ref[vm]["operation"] == "mod"
    assert by_ref[vm]["snapshot"]["name_label"] == "changed"
    assert by_ref[snap]["operation"] == "add"
    assert by_ref[snap]["snapshot"]["is_a_snapshot"] is True
    assert short_lived not in by_ref  # created and deleted inside the window
    later = result["token"]
    assert later > token
    x.VM.destroy(snap)
    deleted = event_from(session, ["vm"], later)
    (event,) = [e for e in deleted["events"] if e["ref"] == snap]
    assert event["operation"] == "del"
    assert "snapshot" not in event
    assert event["class"] == "vm"


def test_inject_returns_the_token_before_the_change(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    pool = x.pool.get_all()[0]
    token = x.event.inject("pool", pool)
    result = event_from(session, ["pool"], token)
    assert [(e["operation"], e["ref"]) for e in result["events"]] == [("mod", pool)]


def test_blocks_until_timeout_then_returns_empty(xapisim) -> None:
    session = xapisim.session()
    token = event_from(session, ["vm"], "")["token"]
    started = time.monotonic()
    result = event_from(session, ["vm"], token, 0.6)
    elapsed = time.monotonic() - started
    assert result["events"] == []
    assert result["token"] == token
    assert 0.5 <= elapsed < 3


def test_blocked_call_wakes_on_a_change(xapisim) -> None:
    session = xapisim.session()
    other = xapisim.session()
    vm = vm_by_name(session, "vm-00001")
    token = event_from(session, ["vm"], "")["token"]
    timer = threading.Timer(0.3, lambda: other.xenapi.VM.set_name_label(vm, "wake"))
    timer.start()
    started = time.monotonic()
    result = event_from(session, ["VM"], token, 10.0)
    timer.join()
    assert time.monotonic() - started < 5
    assert [e["snapshot"]["name_label"] for e in result["events"]] == ["wake"]


def test_per_object_subscription(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    first, second = vm_by_name(session, "vm-00000"), vm_by_name(session, "vm-00001")
    token = event_from(session, ["vm"], "")["token"]
    x.VM.set_name_label(first, "a")
    x.VM.set_name_label(second, "b")
    result = event_from(session, [f"vm/{second}"], token)
    assert [e["ref"] for e in result["events"]] == [second]


def test_parse_failures(xapisim) -> None:
    session = xapisim.session()
    with pytest.raises(XenAPI.Failure) as token:
        event_from(session, ["vm"], "not-a-token")
    assert token.value.details == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "not-a-token"]
    with pytest.raises(XenAPI.Failure) as bare_number:
        event_from(session, ["vm"], "42")
    assert bare_number.value.details == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "42"]


def test_any_class_name_is_accepted(xapisim) -> None:
    """XAPI lower-cases and accepts any class, modelled here or not (docs/xapi.md §7.1)."""
    session = xapisim.session()
    quiet = event_from(session, ["message", "VM_metrics", "nosuchclass"], "", 0.2)
    assert quiet["events"] == [] and quiet["valid_ref_counts"]["vm"] > 0
    mixed = event_from(session, ["Message", "VM"], "", 0.2)
    assert {event["class"] for event in mixed["events"]} == {"vm"}


def test_tasks_appear_as_events(xapisim) -> None:
    session = xapisim.session()
    x = session.xenapi
    token = event_from(session, ["task"], "", 0.1)["token"]
    task = x.task.create("watched", "")
    x.task.set_progress(task, 0.5)
    result = event_from(session, ["task"], token)
    (event,) = result["events"]
    assert (event["operation"], event["ref"], event["snapshot"]["progress"]) == ("add", task, 0.5)
    assert result["valid_ref_counts"]["task"] == 1


def test_session_destroyed_while_waiting(xapisim) -> None:
    session = xapisim.session()
    handle = session.handle
    token = event_from(session, ["vm"], "")["token"]
    logout = threading.Timer(0.3, lambda: post_xml(xapisim.url, call_xml("session.logout", handle)))
    logout.start()
    started = time.monotonic()
    _, _, body = post_xml(xapisim.url, call_xml("event.from", handle, ["vm"], token, 10.0))
    logout.join()  # its answer may come after ours: do not stop the simulator under it
    assert b"<value>SESSION_INVALID</value><value>" + handle.encode() + b"</value>" in body
    assert time.monotonic() - started < 5


def test_toolstack_restart_cuts_waiting_event_streams(xapisim) -> None:
    session = xapisim.session()
    token = event_from(session, ["vm"], "")["token"]
    restart = threading.Timer(0.3, lambda: xapisim.sim("restart_toolstack"))
    restart.start()
    with pytest.raises(ConnectionError):
        post_xml(xapisim.url, call_xml("event.from", session.handle, ["vm"], token, 10.0))
    restart.join()


def test_drop_event_streams_cuts_the_connection(xapisim) -> None:
    session = xapisim.session()
    token = event_from(session, ["vm"], "")["token"]
    outcome = {}

    def wait() -> None:
        # Raw HTTP: the SDK's transport would silently retry once on a new connection.
        try:
            post_xml(xapisim.url, call_xml("event.from", session.handle, ["vm"], token, 30.0))
            outcome["result"] = "answered"
        except ConnectionError as error:
            outcome["result"] = type(error).__name__

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)
    assert xapisim.sim("drop_event_streams") == "1"
    waiter.join(10)
    assert not waiter.is_alive()
    assert outcome["result"] in ("RemoteDisconnected", "ConnectionResetError")
    # The session still works: only the stream was cut.
    assert event_from(session, ["vm"], token, 0.1)["events"] == []
