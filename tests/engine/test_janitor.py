"""Our snapshots on the pool: leftovers of dead runs removed (and only ours), snapshot retention
keeping the base, chain health."""

from __future__ import annotations

import pytest

from backups.engine import ChainUnhealthy
from backups.engine.chain_health import assert_healthy_chains
from backups.engine.vm_disks import VmDisk
from pools.xapi import XapiFailure

from .conftest import RecordingProgress, assert_restores_exactly, job, schedule

pytestmark = pytest.mark.timeout(120)


def test_a_snapshot_a_killed_run_left_untagged_is_removed_but_never_anyone_else_s(pool, remotes):
    vm = pool.vm("vm-00000")
    ref = pool.vm_ref(vm["uuid"])
    client = pool.client
    pool.backup(vm["uuid"], remotes)
    # A run killed right after VM.snapshot, before tagging: its snapshot carries only the
    # pending mark inherited from the live VM, and the live VM still has it too.
    client.call("VM.add_to_other_config", ref, "xoweb:backup:pending", job().id)
    dead = client.call("VM.snapshot", ref, "[xoweb nightly] vm-00000")
    # Not ours: a manual snapshot, and another job's tagged one.
    manual = client.call("VM.snapshot", ref, "before the upgrade")
    client.call("VM.remove_from_other_config", manual, "xoweb:backup:pending")
    other_job = client.call("VM.snapshot", ref, "[xoweb weekly] vm-00000")
    client.call(
        "VM.set_other_config",
        other_job,
        {"xoweb:backup:job": "another-job", "xoweb:backup:vm": vm["uuid"]},
    )
    dead_disks = [
        client.call("VBD.get_VDI", vbd)
        for vbd in client.call("VM.get_VBDs", dead)
        if client.call("VBD.get_type", vbd) == "Disk"
    ]
    progress = RecordingProgress()
    outcome = pool.backup(vm["uuid"], remotes, progress=progress)
    assert outcome.status == "success", outcome.error
    with pytest.raises(XapiFailure, match="HANDLE_INVALID"):
        client.call("VM.get_record", dead)
    for vdi in dead_disks:
        with pytest.raises(XapiFailure, match="HANDLE_INVALID"):
            client.call("VDI.get_record", vdi)
    assert client.call("VM.get_name_label", manual) == "before the upgrade"
    assert client.call("VM.get_name_label", other_job) == "[xoweb weekly] vm-00000"
    assert "xoweb:backup:pending" not in client.call("VM.get_other_config", ref)
    cleaned = [m for node in progress.walk() for m in node.infos if "leftover" in m]
    assert cleaned == [
        "removed the leftover snapshot VM '[xoweb nightly] vm-00000' with 3 "
        "snapshot disks of an interrupted run (its run did not finish)"
    ]


def test_per_disk_snapshots_a_failed_run_left_are_removed(pool, remotes):
    vm = pool.make_vm("leftover", disks=2)
    disks = pool.disks(pool.vm_ref(vm))
    pool.backup(vm, remotes)
    # A run that tagged its per-disk snapshots, then died before its commit.
    leftover = pool.client.call("VDI.snapshot", disks[0], {})
    pool.client.call(
        "VDI.set_other_config",
        leftover,
        {
            "xoweb:backup:job": job().id,
            "xoweb:backup:vm": vm,
            "xoweb:backup:datetime": "20300101T00:00:00Z",
            "xoweb:backup:schedule": schedule().id,
        },
    )
    outcome = pool.backup(vm, remotes)
    assert outcome.status == "success", outcome.error
    with pytest.raises(XapiFailure, match="HANDLE_INVALID"):
        pool.client.call("VDI.get_record", leftover)
    # Its time stamp was in the future: this backup still sorts after everything on the remote.
    assert outcome.timestamp < "20300101T000000Z"


def test_snapshot_retention_keeps_n_beyond_the_base(pool, remotes):
    vm = pool.make_vm("retention", disks=1)
    keep_two = schedule(snapshot_retention=2)
    stamps = []
    for round_number in range(5):
        pool.write(vm, 0, blocks=1, seed=round_number + 1)
        stamps.append(pool.backup(vm, remotes, schedule=keep_two).timestamp)
    snapshots = pool.client.call("VDI.get_snapshots", pool.disks(pool.vm_ref(vm))[0])
    kept = sorted(
        pool.client.call("VDI.get_other_config", ref)["xoweb:backup:datetime"] for ref in snapshots
    )
    from backups.engine.tags import tag_datetime

    assert kept == [tag_datetime(stamp) for stamp in stamps[-3:]]


def test_an_sr_that_has_not_coalesced_skips_the_backup_until_it_has(pool, remotes):
    vm = pool.make_vm("chain", disks=1)
    outcomes = []
    for number in range(6):  # snapshots destroyed by retention, and no coalesce between runs
        pool.write(vm, 0, blocks=1, seed=number + 1)
        outcomes.append(pool.backup(vm, remotes, coalesce=False))
        if outcomes[-1].status == "skipped":
            break
    skipped = outcomes[-1]
    assert skipped.status == "skipped", [o.status for o in outcomes]
    assert skipped.error.startswith("unhealthy VDI chain: disk 0 'chain disk 0' has a base copy (")
    assert "the SR has not coalesced yet" in skipped.error
    assert skipped.disks == [] and skipped.metadata == {}
    assert len(remotes[0].list_backups(vm)) == len(outcomes) - 1
    assert len(pool.our_snapshots(vm)) == 1  # no snapshot was taken for the skipped run
    after = pool.backup(vm, remotes)  # the SR coalesced meanwhile
    assert after.status == "success", after.error
    assert_restores_exactly(pool, remotes[0])


class FakeClient:
    """Just enough of XapiClient for the chain-health walk: canned VDI records."""

    def __init__(self, records: dict[str, dict]) -> None:
        self.records = records

    def call(self, method: str, *args):
        if method == "VDI.get_by_uuid":
            for ref, record in self.records.items():
                if record["uuid"] == args[0]:
                    return ref
            raise XapiFailure(["UUID_INVALID", "VDI", args[0]])
        if method == "VDI.get_record":
            return self.records[args[0]]
        if method == "VDI.get_all_records_where":
            return {ref: r for ref, r in self.records.items() if f'"{r["SR"]}"' in args[0]}
        raise AssertionError(method)


def vdi(uuid: str, parent: str | None, managed: bool = False) -> dict:
    sm = {"vhd-parent": parent} if parent else {}
    return {
        "uuid": uuid,
        "SR": "OpaqueRef:sr",
        "managed": managed,
        "sm_config": sm,
        "name_label": uuid,
    }


def test_chain_health_follows_xo_s_rule():
    # leaf (managed) → b1 (base copy) → b0 (base copy): b1 has a single unmanaged child? No:
    # b1's only child is the managed leaf (a leaf SRs may not coalesce). b0's only child is b1,
    # unmanaged: one uncoalesced node, within XO's tolerance of 1.
    records = {
        "OpaqueRef:leaf": vdi("leaf", "b1", managed=True),
        "OpaqueRef:b1": vdi("b1", "b0"),
        "OpaqueRef:b0": vdi("b0", None),
    }
    leaf = VmDisk("OpaqueRef:vbd", "OpaqueRef:leaf", {"userdevice": "0"}, records["OpaqueRef:leaf"])
    assert_healthy_chains(FakeClient(records), [leaf])
    # A second uncoalesced pair: the backup is skipped, with the reason.
    records["OpaqueRef:b1"] = vdi("b1", "b2")
    records["OpaqueRef:b2"] = vdi("b2", "b0")
    with pytest.raises(ChainUnhealthy) as caught:
        assert_healthy_chains(FakeClient(records), [leaf])
    assert str(caught.value).startswith(
        "unhealthy VDI chain: disk 0 'leaf' has a base copy (b0) the SR has not coalesced yet"
    )
    # A snapshot sharing the base copy makes it a fork, not an uncoalesced node.
    records["OpaqueRef:snap"] = vdi("snap", "b2", managed=True)
    assert_healthy_chains(FakeClient(records), [leaf])
