"""The wrappers of `make run` (xoweb/graceful.py) on their own, with stand-in children.

The whole stop, with honcho, the real worker and Redis, is tests/xoweb/test_procfile.py.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import time

from tests.fixtures.processes import ManagedProcess, child_pids, start_process, wait_until

#: A stand-in worker: writes down every stop signal, and leaves only on SIGQUIT.
STAND_IN = textwrap.dedent(
    """
    import signal, sys, time
    def note(signum, frame):
        print(signal.Signals(signum).name, flush=True)
        if signum == signal.SIGQUIT:
            sys.exit(0)
    signal.signal(signal.SIGTERM, note)
    signal.signal(signal.SIGQUIT, note)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
    """
)


def wrapped_stand_in(tmp_path, **env: str) -> ManagedProcess:
    environment = {**os.environ, "XOWEB_WORKER_STOP_SECONDS": "0.5", **env}
    wrapper = start_process(
        "graceful-worker",
        [sys.executable, "-m", "xoweb.graceful", "worker", "--", sys.executable, "-c", STAND_IN],
        tmp_path,
        environment,
    )
    wrapper.wait_for_log("ready")
    return wrapper


def test_a_stop_request_is_a_warm_shutdown_then_a_cold_one(tmp_path):
    wrapper = wrapped_stand_in(tmp_path)
    (worker,) = child_pids(wrapper.pid)
    assert os.getpgid(worker) != os.getpgid(wrapper.pid), "the worker must have its own group"

    started = time.monotonic()
    os.killpg(wrapper.pid, signal.SIGTERM)  # what honcho sends: to the wrapper's group only
    assert wrapper.popen.wait(10) == 0
    lines = wrapper.log().splitlines()
    assert lines.index("SIGTERM") < lines.index("SIGQUIT")
    assert "graceful: the worker still runs 0.5 s after the stop request: cold shutdown" in (
        wrapper.log()
    )
    assert time.monotonic() - started >= 0.5, "the running tasks were given their time"


def test_a_killed_wrapper_takes_its_worker_with_it(tmp_path):
    wrapper = wrapped_stand_in(tmp_path)
    (worker,) = child_pids(wrapper.pid)
    os.kill(wrapper.pid, signal.SIGKILL)
    wrapper.popen.wait(5)

    def gone() -> bool:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return True
        return False

    wait_until(gone, timeout=5, message="the worker outlived its killed wrapper")
    assert "SIGQUIT" in wrapper.log(), "the kernel's death signal: a cold shutdown"
