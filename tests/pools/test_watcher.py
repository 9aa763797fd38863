"""The watcher as a real ``manage.py watch_pools`` process against xapisim over HTTP."""

from __future__ import annotations

import time

import pytest

from pools.choices import PoolStatus
from pools.models import VDI, VM, Pool, WatcherHeartbeat, XapiTask
from tests.fixtures.pools import cache_snapshot, failover, sim_snapshot, urls

# The database tests also run on PostgreSQL (make test: -m django_db).
pytestmark = [pytest.mark.timeout(120), pytest.mark.django_db(transaction=True)]


def status_of(pool: Pool) -> str:
    pool.refresh_from_db()
    return pool.status


def connected(pool: Pool) -> bool:
    return status_of(pool) == PoolStatus.CONNECTED


def guest_vm(client) -> tuple[str, dict]:
    for ref, record in client.get_all_records("VM").items():
        if not (record["is_a_template"] or record["is_control_domain"] or record["is_a_snapshot"]):
            return ref, record
    raise AssertionError("the simulator has no guest VM")


@pytest.fixture
def watch(make_pool, start_watcher, wait_for):
    """``watch(sim, **env)``: a pool row for ``sim`` and the watcher started with ``env``,
    returned as ``(pool, watcher)`` once the watcher has connected the pool."""

    def start(sim, **env: str):
        pool = make_pool(sim)
        watcher = start_watcher(**env)
        wait_for(lambda: connected(pool), timeout=15, message="the pool never connected")
        return pool, watcher

    return start


def test_first_sync_equals_the_simulator(xapisim_factory, tmp_path, watch, sim_client):
    sim = xapisim_factory(vms=5, hosts=2)
    pool, watcher = watch(sim)

    expected = sim_snapshot(sim_client(sim))
    assert cache_snapshot(pool) == expected
    assert len(expected["vm"]) >= 5 and len(expected["host"]) == 2
    guests = VM.objects.filter(pool=pool).guests()
    assert guests.count() == 5
    assert all(vm.power_state for vm in guests)
    pool.refresh_from_db()
    assert pool.xapi_uuid and pool.last_event_at is not None
    master_url, member_urls = urls(sim)
    assert sorted(pool.member_urls) == sorted([master_url, *member_urls])
    assert WatcherHeartbeat.objects.get().pid == watcher.pid


def test_changes_appear_within_a_second(xapisim, watch, sim_client, wait_for):
    pool, _ = watch(xapisim)
    client = sim_client(xapisim)
    vm_ref, _ = guest_vm(client)

    client.call("VM.set_name_label", vm_ref, "renamed by the test")
    wait_for(
        lambda: VM.objects.get(pool=pool, ref=vm_ref).name_label == "renamed by the test",
        timeout=1.0,
        message="the rename did not reach the cache within a second",
    )

    new_ref = client.call("sim.vm_create", "a new VM", 2, "4M", "Running")
    wait_for(
        lambda: VM.objects.filter(pool=pool, ref=new_ref, name_label="a new VM").exists(),
        timeout=1.0,
        message="the new VM did not reach the cache within a second",
    )

    snapshot_ref = client.call("VM.snapshot", vm_ref, "snap of the test")
    wait_for(
        lambda: VM.objects.filter(
            pool=pool, ref=snapshot_ref, is_a_snapshot=True, snapshot_of_ref=vm_ref
        ).exists(),
        timeout=1.0,
        message="the snapshot did not reach the cache within a second",
    )

    snapshot = client.call("VM.get_record", snapshot_ref)
    disk_refs = [client.call("VBD.get_VDI", vbd) for vbd in snapshot["VBDs"]]
    disk_refs = [ref for ref in disk_refs if ref != "OpaqueRef:NULL"]
    assert disk_refs, "the snapshot has no disk to delete"
    assert VDI.objects.filter(pool=pool, ref=disk_refs[0]).exists()
    client.call("VDI.destroy", disk_refs[0])
    wait_for(
        lambda: not VDI.objects.filter(pool=pool, ref=disk_refs[0]).exists(),
        timeout=1.0,
        message="the deleted disk stayed in the cache for more than a second",
    )
    assert cache_snapshot(pool) == sim_snapshot(client)


def test_base_copies_are_cached_but_never_counted_as_disks(
    xapisim_factory, watch, sim_client, wait_for
):
    """A snapshot on a VHD SR adds a hidden base copy (managed=false): the watcher caches it
    like XAPI lists it, the pages' counts leave it out (docs/xapi.md §12)."""
    sim = xapisim_factory(vms=2, disk_size="16M", args=("--coalesce-delay", "-1"))
    pool, _ = watch(sim)
    client = sim_client(sim)
    vm_ref, _ = guest_vm(client)
    disks_before = Pool.objects.with_counts().get(pk=pool.pk).vdi_count
    snapshot = client.call("VM.snapshot", vm_ref, "with a base copy")
    disk = next(
        client.call("VBD.get_VDI", vbd)
        for vbd in client.call("VM.get_VBDs", snapshot)
        if client.call("VBD.get_type", vbd) == "Disk"
    )
    base_uuid = client.call("VDI.get_sm_config", disk)["vhd-parent"]
    wait_for(
        lambda: VDI.objects.filter(pool=pool, uuid=base_uuid, managed=False).exists(),
        timeout=2.0,
        message="the base copy never reached the cache",
    )
    snapshot_disks = sum(
        client.call("VBD.get_type", vbd) == "Disk" for vbd in client.call("VM.get_VBDs", snapshot)
    )
    counted = Pool.objects.with_counts().get(pk=pool.pk).vdi_count
    assert counted == disks_before + snapshot_disks  # the snapshot's disks, not the base copies
    assert VDI.objects.filter(pool=pool, managed=False).count() == snapshot_disks


def test_master_failover_is_survived_without_a_restart(
    xapisim_factory, watch, sim_client, wait_for
):
    sim = xapisim_factory(vms=3, hosts=3)
    pool, watcher = watch(sim)

    _, member_urls = urls(sim)
    new_master = failover(sim)
    assert new_master in member_urls
    wait_for(
        lambda: connected(pool) and pool.connected_url == new_master,
        timeout=15,
        message="the watcher did not follow the new master",
    )
    client = sim_client(sim, url=new_master)
    vm_ref, _ = guest_vm(client)
    client.call("VM.set_name_label", vm_ref, "after failover")
    wait_for(
        lambda: VM.objects.get(pool=pool, ref=vm_ref).name_label == "after failover",
        timeout=2.0,
        message="changes on the new master never reached the cache",
    )
    assert watcher.alive()
    assert cache_snapshot(pool) == sim_snapshot(client)


def test_toolstack_restart_is_survived_and_ghost_tasks_disappear(
    xapisim, watch, sim_client, wait_for
):
    pool, watcher = watch(xapisim)
    client = sim_client(xapisim)
    task_refs = [client.call("task.create", f"ghost {n}", "") for n in range(3)]
    wait_for(
        lambda: XapiTask.objects.filter(pool=pool, ref__in=task_refs).count() == 3,
        timeout=2,
        message="the tasks never reached the cache",
    )

    xapisim.sim("sim.restart_toolstack")
    wait_for(
        lambda: not XapiTask.objects.filter(pool=pool, ref__in=task_refs).exists(),
        timeout=3,
        message="ghost tasks stayed in the cache after the toolstack restart",
    )
    fresh = sim_client(xapisim)
    vm_ref, _ = guest_vm(fresh)
    fresh.call("VM.set_name_label", vm_ref, "after restart")
    wait_for(
        lambda: VM.objects.get(pool=pool, ref=vm_ref).name_label == "after restart",
        timeout=2.0,
        message="events stopped after the toolstack restart",
    )
    assert watcher.alive()
    assert connected(pool)


def test_lost_master_greys_objects_then_purges_them_after_the_grace(
    xapisim, watch, wait_for, client
):
    pool, _ = watch(xapisim, POOL_STALE_GRACE_SECONDS="4")
    vm_count = VM.objects.filter(pool=pool).count()
    assert vm_count > 0 and VM.objects.filter(pool=pool).live().count() == vm_count

    xapisim.stop()
    stopped_at = time.monotonic()
    wait_for(
        lambda: VM.objects.filter(pool=pool, stale_since__isnull=False).count() == vm_count,
        timeout=3,
        message="the objects of the lost pool were not greyed within seconds",
    )
    assert status_of(pool) == PoolStatus.STALE
    assert "refused" in pool.status_message
    assert VM.objects.filter(pool=pool).live().count() == 0
    page = client.get("/vms/").content.decode()
    assert page.count('class="vm stale"') == min(VM.objects.filter(pool=pool).guests().count(), 50)

    wait_for(
        lambda: not VM.objects.filter(pool=pool).exists(),
        timeout=10,
        message="the stale objects were never purged",
    )
    assert time.monotonic() - stopped_at >= 3.5, "purged before the grace period ended"
    assert status_of(pool) == PoolStatus.DISCONNECTED


def test_a_grace_of_zero_purges_at_once(xapisim, watch, wait_for):
    pool, _ = watch(xapisim, POOL_STALE_GRACE_SECONDS="0")
    xapisim.stop()
    wait_for(
        lambda: not VM.objects.filter(pool=pool).exists(),
        timeout=3,
        message="a grace of 0 did not purge at once",
    )


def test_restart_within_the_grace_shows_no_gap(xapisim, watch, wait_for):
    pool, _ = watch(xapisim, POOL_STALE_GRACE_SECONDS="30")
    refs = set(VM.objects.filter(pool=pool).values_list("ref", flat=True))

    xapisim.stop()
    wait_for(lambda: status_of(pool) == PoolStatus.STALE, timeout=3, message="never stale")
    xapisim.start()
    deadline = time.monotonic() + 15
    while not (connected(pool) and not VM.objects.filter(pool=pool).stale().exists()):
        # Poll all along: the VMs must never vanish, not even for a moment.
        assert set(VM.objects.filter(pool=pool).values_list("ref", flat=True)) == refs
        assert time.monotonic() < deadline, "the pool never reconnected"
        time.sleep(0.02)
    assert set(VM.objects.filter(pool=pool).live().values_list("ref", flat=True)) == refs


def test_restart_after_deletions_removes_them_from_the_cache(xapisim, watch, sim_client, wait_for):
    pool, _ = watch(xapisim, POOL_STALE_GRACE_SECONDS="30")

    # Take the pool out of the watcher's hands, delete behind its back, restart the simulator.
    xapisim.stop()
    wait_for(lambda: status_of(pool) == PoolStatus.STALE, timeout=3, message="never stale")
    Pool.objects.filter(pk=pool.pk).update(enabled=False)
    wait_for(lambda: status_of(pool) == PoolStatus.DISABLED, timeout=5, message="not disabled")
    xapisim.start()
    client = sim_client(xapisim)
    vm_ref, _ = guest_vm(client)
    client.call("sim.vm_destroy", vm_ref)
    assert VM.objects.filter(pool=pool, ref=vm_ref).exists()

    Pool.objects.filter(pk=pool.pk).update(enabled=True)
    wait_for(lambda: connected(pool), timeout=15, message="the pool never reconnected")
    assert not VM.objects.filter(pool=pool, ref=vm_ref).exists()
    assert cache_snapshot(pool) == sim_snapshot(client)


def test_pools_added_changed_disabled_and_removed_without_a_restart(
    xapisim_factory, make_pool, start_watcher, wait_for
):
    xapisim = xapisim_factory(password="Pw-9f3k2-secret")
    watcher = start_watcher()
    pool = make_pool(xapisim)
    wait_for(lambda: connected(pool), timeout=15, message="a pool added later never connected")

    pool.set_password("not the password")
    pool.save()
    wait_for(
        lambda: status_of(pool) == PoolStatus.ERROR, timeout=15, message="the change was ignored"
    )
    assert "refused the user name or password" in pool.status_message
    assert VM.objects.filter(pool=pool).live().count() == 0

    pool.set_password("Pw-9f3k2-secret")
    pool.save()
    wait_for(lambda: connected(pool), timeout=15, message="the fixed password was not used")

    Pool.objects.filter(pk=pool.pk).update(enabled=False)
    wait_for(lambda: status_of(pool) == PoolStatus.DISABLED, timeout=5, message="not disabled")
    assert VM.objects.filter(pool=pool).live().count() == 0
    Pool.objects.filter(pk=pool.pk).update(enabled=True)
    wait_for(lambda: connected(pool), timeout=15, message="the pool enabled again never connected")

    Pool.objects.filter(pk=pool.pk).delete()
    watcher.wait_for_log("removed: stopping its watcher", timeout=5)
    assert watcher.alive()
    assert "not the password" not in watcher.log()
    assert "Pw-9f3k2-secret" not in watcher.log()


def test_a_ghost_in_the_cache_is_noticed_by_the_counts_and_removed(
    xapisim, watch, sim_client, wait_for
):
    pool, watcher = watch(xapisim)
    # A task the pool does not have (one that vanished without a del event).
    XapiTask.objects.create(pool=pool, ref="OpaqueRef:ghost", name_label="ghost", status="pending")
    client = sim_client(xapisim)
    vm_ref, _ = guest_vm(client)
    client.call("VM.set_name_label", vm_ref, "any change")
    wait_for(
        lambda: not XapiTask.objects.filter(pool=pool, ref="OpaqueRef:ghost").exists(),
        timeout=2,
        message="valid_ref_counts did not reveal the ghost task",
    )
    watcher.wait_for_log("re-fetching them", timeout=1)
    wait_for(
        lambda: VM.objects.get(pool=pool, ref=vm_ref).name_label == "any change",
        timeout=1,
        message="the change was lost",
    )
    assert cache_snapshot(pool) == sim_snapshot(client)


def test_xapi_tasks_record_their_progress_and_can_be_cancelled(
    xapisim, watch, sim_client, wait_for
):
    from pools.services import cancel_xapi_task

    pool, _ = watch(xapisim)
    client = sim_client(xapisim)
    vm_ref, _ = guest_vm(client)
    xapisim.sim("set_async_delay", 1.0)
    done_ref = client.call("Async.VM.snapshot", vm_ref, "watched snapshot")
    wait_for(
        lambda: XapiTask.objects.filter(pool=pool, ref=done_ref, status="success").exists(),
        timeout=4,
        message="the task never finished in the cache",
    )
    task = XapiTask.objects.get(pool=pool, ref=done_ref)
    assert task.name_label == "Async.VM.snapshot" and task.progress == 1.0
    assert task.finished is not None and task.created is not None
    progresses = [progress for _, progress in task.progress_history]
    assert len(progresses) >= 4 and progresses == sorted(progresses) and progresses[-1] == 1.0
    times = [moment for moment, _ in task.progress_history]
    assert times == sorted(times) and times[-1] - times[0] > 0.3

    xapisim.sim("set_async_delay", 5.0)
    slow_ref = client.call("Async.VM.snapshot", vm_ref, "cancelled snapshot")
    wait_for(
        lambda: XapiTask.objects.filter(pool=pool, ref=slow_ref).exists(),
        timeout=2,
        message="the slow task never reached the cache",
    )
    cancel_xapi_task(XapiTask.objects.get(pool=pool, ref=slow_ref))
    wait_for(
        lambda: XapiTask.objects.get(pool=pool, ref=slow_ref).status == "cancelled",
        timeout=3,
        message="the cancelled task never showed as cancelled",
    )
    assert XapiTask.objects.get(pool=pool, ref=slow_ref).error_info[0] == "TASK_CANCELLED"


def test_cancelling_a_task_of_a_lost_pool_says_why(make_pool, xapisim, db):
    from django.utils import timezone

    from pools.services import PoolUnavailable, cancel_xapi_task

    pool = make_pool(xapisim, status=PoolStatus.STALE, stale_since=timezone.now())
    task = XapiTask.objects.create(pool=pool, ref="OpaqueRef:t", name_label="export")
    with pytest.raises(
        PoolUnavailable, match=r"pool pool1 is stale since .*: task export cannot be"
    ):
        cancel_xapi_task(task)
    # Connected, but no watcher keeps the cache current: not live either.
    Pool.objects.filter(pk=pool.pk).update(status=PoolStatus.CONNECTED, stale_since=None)
    with pytest.raises(
        PoolUnavailable, match=r"^no pool watcher is running: .* task export cannot be cancelled"
    ):
        cancel_xapi_task(task)


def test_a_second_watcher_refuses_to_start(start_watcher, run_manage, wait_for):
    first = start_watcher()
    wait_for(lambda: WatcherHeartbeat.objects.exists(), timeout=5, message="no heartbeat")
    second = run_manage("watch_pools")
    assert second.returncode != 0
    assert f"another watch_pools is running (pid {first.pid} on" in second.stderr
    assert first.alive()


def test_dropped_streams_and_lost_events_resync_without_greying(
    xapisim, watch, sim_client, wait_for
):
    pool, watcher = watch(xapisim)
    client = sim_client(xapisim)
    vm_ref, _ = guest_vm(client)
    connected_at = Pool.objects.get(pk=pool.pk).connected_at

    xapisim.sim("fail_next", "event.from", ["EVENTS_LOST"])
    client.call("VM.set_name_label", vm_ref, "after lost events")
    wait_for(
        lambda: VM.objects.get(pool=pool, ref=vm_ref).name_label == "after lost events",
        timeout=2,
        message="the watcher did not resync after EVENTS_LOST",
    )
    watcher.wait_for_log("EVENTS_LOST; full resync", timeout=1)

    # Cut the watcher's stream once it waits in event.from again (0 = nobody was waiting).
    wait_for(
        lambda: int(xapisim.sim("drop_event_streams")) == 1,
        timeout=3,
        message="the watcher never waited on event.from again",
    )
    client.call("VM.set_name_label", vm_ref, "after a dropped stream")
    wait_for(
        lambda: VM.objects.get(pool=pool, ref=vm_ref).name_label == "after a dropped stream",
        timeout=2,
        message="the watcher did not come back after its stream was cut",
    )
    pool.refresh_from_db()
    assert pool.status == PoolStatus.CONNECTED and pool.connected_at > connected_at
    assert "pool pool1 lost:" not in watcher.log(), "a short interruption must not grey the pool"
    assert not VM.objects.filter(pool=pool, stale_since__isnull=False).exists()


def test_tls_is_trusted_on_first_use_then_a_changed_certificate_is_refused(
    xapisim_factory, make_pool, start_watcher, wait_for
):
    from pools.xapi import fetch_certificate_fingerprint

    sim = xapisim_factory(tls=True)
    pool = make_pool(sim)
    assert pool.tls_fingerprint == ""
    start_watcher()
    wait_for(lambda: connected(pool), timeout=15, message="the TLS pool never connected")
    actual = fetch_certificate_fingerprint(urls(sim)[0])
    assert pool.tls_fingerprint == actual

    wrong = ":".join(["AB"] * 32)
    Pool.objects.filter(pk=pool.pk).update(tls_fingerprint=wrong)
    wait_for(
        lambda: status_of(pool) == PoolStatus.ERROR,
        timeout=10,
        message="a pinned fingerprint that no longer matches was ignored",
    )
    assert pool.status_message.startswith("the TLS certificate of")
    assert f"has fingerprint {actual}, but {wrong} is pinned" in pool.status_message
    assert VM.objects.filter(pool=pool).live().count() == 0


def test_after_a_failover_over_tls_the_new_masters_certificate_is_pinned_too(
    xapisim_factory, watch, wait_for
):
    from pools.xapi import fetch_certificate_fingerprint

    sim = xapisim_factory(vms=2, hosts=2, tls=True)
    pool, watcher = watch(sim)
    new_master = failover(sim)
    wait_for(
        lambda: connected(pool) and pool.connected_url == new_master,
        timeout=15,
        message="the watcher did not follow the new master over TLS",
    )
    actual = fetch_certificate_fingerprint(new_master)
    assert pool.member_fingerprints == {new_master: actual}

    # Someone else answering on that host now: its certificate no longer matches the pin.
    wrong = ":".join(["CD"] * 32)
    Pool.objects.filter(pk=pool.pk).update(member_fingerprints={new_master: wrong})
    wait_for(
        lambda: status_of(pool) == PoolStatus.ERROR,
        timeout=15,
        message="a member's pinned fingerprint that no longer matches was ignored",
    )
    assert f"has fingerprint {actual}, but {wrong} is pinned" in pool.status_message
    assert watcher.alive()
