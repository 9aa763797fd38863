"""The restore test (backups.engine.health_check) against the simulator over HTTP: the newest
backup restored as a new VM without network, started, seen Running, and always destroyed —
when it passes, when the pool refuses to start it, and when it does not run in time."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from backups.engine.health_check import (
    MARK,
    TAG,
    destroy_leftover,
    find_leftovers,
    health_check,
)
from backups.engine.vm_restore import restore_vm

from .conftest import RecordingProgress

pytestmark = pytest.mark.timeout(120)


class Watching(RecordingProgress):
    """Records the restored VM as the pool shows it when its start begins."""

    def __init__(self, client, on_start=None) -> None:
        super().__init__()
        self.client = client
        self.on_start = on_start
        self.seen: dict | None = None

    def subtask(self, name, *, kind="", total=None):
        manager = super().subtask(name, kind=kind, total=total)
        if kind != "start":
            return manager

        @contextmanager
        def watched():
            [ref] = [
                ref
                for ref, record in self.client.get_all_records("VM").items()
                if (record["other_config"] or {}).get(MARK) == "check-1"
            ]
            self.seen = self.client.call("VM.get_record", ref)
            if self.on_start is not None:
                self.on_start()
            with manager as child:
                yield child

        return watched()


@pytest.fixture
def newest(pool, remotes):
    vm = pool.vm("vm-00000")
    outcome = pool.backup(vm["uuid"], remotes[:1])
    return outcome.metadata["r1"]


def ours(pool) -> list:
    """Every VM or VDI on the pool that carries a restore test's mark."""
    return [
        record
        for cls in ("VM", "VDI")
        for record in pool.client.get_all_records(cls).values()
        if MARK in (record.get("other_config") or {})
    ]


def test_a_good_backup_boots_and_the_restored_vm_is_destroyed(pool, remotes, newest):
    progress = Watching(pool.client)
    outcome = health_check(
        pool.client,
        remotes[0],
        newest,
        pool.default_sr(),
        mark="check-1",
        timeout=30,
        progress=progress,
    )
    assert outcome.ok, outcome.error
    assert outcome.error == "" and outcome.destroyed and outcome.left == []
    assert outcome.boot_seconds is not None and outcome.boot_seconds < 30
    seen = progress.seen
    assert seen is not None and seen["uuid"] == outcome.vm_uuid
    assert seen["name_label"].startswith("[xoweb health check] vm-00000 (")
    assert seen["tags"] == [TAG] and seen["VIFs"] == [], "never on the network"
    assert len(seen["VBDs"]) == 2
    with pytest.raises(Exception, match="UUID_INVALID"):
        pool.client.call("VM.get_by_uuid", outcome.vm_uuid)
    assert ours(pool) == [], "neither the VM nor its disks are left"
    assert [n.kind for n in progress.walk() if n.kind] == ["restore", "restore", "start", "destroy"]


def test_a_vm_that_cannot_start_fails_with_the_pools_reason_and_is_destroyed(pool, remotes, newest):
    pool.sim.sim("fail_next", "Async.VM.start", ["NO_HOSTS_AVAILABLE"])
    outcome = health_check(
        pool.client, remotes[0], newest, pool.default_sr(), mark="check-1", timeout=30
    )
    assert not outcome.ok and outcome.boot_seconds is None
    assert outcome.error.startswith("the restored VM did not start: ")
    assert "NO_HOSTS_AVAILABLE" in outcome.error
    assert outcome.destroyed and outcome.vm_uuid
    assert ours(pool) == []


def test_a_vm_that_does_not_run_in_time_fails_and_is_destroyed(pool, remotes, newest):
    def slow_pool() -> None:
        pool.sim.sim("set_async_delay", "5")

    progress = Watching(pool.client, on_start=slow_pool)
    try:
        outcome = health_check(
            pool.client,
            remotes[0],
            newest,
            pool.default_sr(),
            mark="check-1",
            timeout=0.5,
            progress=progress,
        )
    finally:
        pool.sim.sim("set_async_delay", "0")
    assert not outcome.ok
    assert outcome.error == (
        "the restored VM did not start within 0.5 s (its start was cancelled): raise the "
        "restore test's timeout, or look at the pool"
    )
    assert outcome.destroyed and ours(pool) == []


def test_leftovers_of_a_dead_check_are_found_by_their_mark_and_destroyed(pool, remotes, newest):
    """A process killed during its check leaves a marked VM (and marked disks): found, gone."""
    restore_vm(
        pool.client,
        remotes[0],
        newest,
        pool.default_sr(),
        networks=False,
        mark={MARK: "check-41"},
        vm_tags=[TAG],
    )
    found = find_leftovers(pool.client)
    assert [(item.kind, item.mark) for item in found] == [("VM", "check-41")] + [
        ("VDI", "check-41")
    ] * 2
    assert destroy_leftover(pool.client, found[0]) == []
    assert find_leftovers(pool.client) == [], "its disks went with it"
