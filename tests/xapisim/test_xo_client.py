"""XO's JavaScript XAPI client (npm `xen-api@4.7.6`) cannot tell the simulator from XAPI:
it connects, builds its cache, follows `event.from`, sees a snapshot and its hidden base copy appear
and the base copy go when the SR coalesces (docs/xapi.md §7.4, §12).

The package is installed by the project's test set-up:
`npm install --prefix var/npm xen-api@4.7.6`. Without it this test fails (never skips)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.xapisim.helpers import vm_by_name

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "var" / "npm" / "node_modules" / "xen-api" / "index.mjs"
SCRIPT = Path(__file__).with_name("xo_client.mjs")


def _read_event(process: subprocess.Popen[str]) -> dict:
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        raise AssertionError(
            f"the XO client exited ({process.returncode}): {process.stderr.read()[-2000:]}"
        )
    return json.loads(line)


@pytest.mark.parametrize("transport", ["auto", "json-rpc", "xml-rpc"])
def test_xo_xen_api_client_builds_cache_and_sees_a_snapshot(xapisim_factory, transport) -> None:
    if shutil.which("node") is None:
        pytest.fail("node is not installed; the XO client test needs node 20+")
    if not MODULE.exists():
        pytest.fail(
            f"{MODULE} is missing: run `npm install --prefix var/npm xen-api@4.7.6` (make test does)"
        )
    sim = xapisim_factory(vms=6, hosts=2, tls=transport == "auto", args=("--coalesce-delay", "-1"))
    session = sim.session()
    process = subprocess.Popen(
        ["node", str(SCRIPT), str(MODULE), sim.url, sim.password, transport],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        cached = _read_event(process)
        assert cached["event"] == "cached", cached
        assert cached["pool"] == "xapisim-2h-6vm"
        assert cached["poolRef"] == session.xenapi.pool.get_all()[0]
        assert cached["vms"] == len(session.xenapi.VM.get_all())
        assert (cached["hosts"], cached["srs"]) == (2, len(session.xenapi.SR.get_all()))
        assert {"VM", "VDI", "VBD", "SR", "host", "pool", "network", "VIF", "PBD"} <= set(
            cached["types"]
        )
        vm = vm_by_name(session, "vm-00001")
        snap = session.xenapi.VM.snapshot(vm, "seen-by-xo")
        seen = _read_event(process)
        assert seen["event"] == "snapshot", seen
        assert (seen["ref"], seen["name"], seen["snapshotOf"]) == (snap, "seen-by-xo", vm)
        assert (seen["isTemplate"], seen["powerState"]) == (True, "Halted")
        memory = session.xenapi.VM.get_memory_static_max(snap)
        assert str(seen["memory"]) == memory  # 4294967296: beyond 32 bits, intact
        assert session.xenapi.task.get_name_label(seen["task"]) == "xo-task"
        # The hidden base copy is in XO's cache like any VDI, with what XO's chain check reads.
        x = session.xenapi
        base = seen["baseCopy"]
        assert x.VDI.get_sm_config(seen["disk"])["vhd-parent"] == base["uuid"]
        assert (base["managed"], base["readOnly"], seen["diskReadOnly"]) == (False, True, False)
        x.VDI.destroy(seen["disk"])
        x.VM.destroy(snap)
        assert sim.sim("coalesce") == "1"
        assert _read_event(process) == {"event": "coalesced", "ref": base["ref"]}
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
