"""Argument counts as XAPI's generated dispatcher checks them, and older pools
(docs/xapi.md §8.9): `--api-version` below 21.4.0 makes VM.snapshot a two-argument method."""

from __future__ import annotations

import pytest
import XenAPI

from tests.xapisim.helpers import vm_by_name


def failure(call, *args) -> list[str]:
    with pytest.raises(XenAPI.Failure) as raised:
        call(*args)
    return raised.value.details


def test_a_pool_older_than_21_4_has_no_ignore_vdis(xapisim_factory) -> None:
    sim = xapisim_factory(vms=1, disk_size="16M", args=("--api-version", "21.3.0"))
    session = sim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00000")
    host = x.pool.get_master(x.pool.get_all()[0])
    assert x.host.get_software_version(host)["xapi"] == "21.3.0"
    assert failure(x.VM.snapshot, vm, "with ignore_vdis", []) == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "VM.snapshot",
        "2",
        "3",
    ]
    # The count is checked before any task exists: Async answers it at once.
    assert failure(x.Async.VM.snapshot, vm, "async", []) == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "VM.snapshot",
        "2",
        "3",
    ]
    assert x.VM.get_snapshot_of(x.VM.snapshot(vm, "two arguments")) == vm
    assert sim.sim("set_api_version", "21.4.0") == "21.4.0"
    assert x.VM.get_snapshot_of(x.VM.snapshot(vm, "three arguments", [])) == vm
    assert x.host.get_software_version(host)["xapi"] == "21.4.0"


def test_counts_without_defaults_are_exact_with_defaults_extra_ones_are_ignored(
    xapisim,
) -> None:
    session = xapisim.session()
    x = session.xenapi
    vm = vm_by_name(session, "vm-00002")  # halted
    # No defaulted parameter: exactly as many as declared (the session not counted).
    assert failure(x.VM.start, vm, False) == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "VM.start",
        "3",
        "2",
    ]
    assert failure(x.VM.start, vm, False, False, "extra") == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "VM.start",
        "3",
        "4",
    ]
    assert failure(x.task.create, "only a label") == [
        "MESSAGE_PARAMETER_COUNT_MISMATCH",
        "task.create",
        "2",
        "1",
    ]
    # Defaulted trailing parameters: from the required ones up, extras ignored.
    disk = x.VBD.get_VDI(x.VM.get_VBDs(vm)[0])
    assert x.VDI.get_is_a_snapshot(x.VDI.snapshot(disk)) is True
    assert x.VDI.get_is_a_snapshot(x.VDI.snapshot(disk, {}, "ignored")) is True
    assert failure(x.VDI.snapshot) == ["MESSAGE_PARAMETER_COUNT_MISMATCH", "VDI.snapshot", "1", "0"]
    extra = XenAPI.Session(xapisim.url)
    extra.login_with_password("root", xapisim.password, "1.0", "tests", "ignored too")
    assert extra.xenapi.pool.get_all()
