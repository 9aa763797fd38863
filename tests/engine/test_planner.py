"""The planner's rules, pure: each reason, their order, and properties over random facts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backups.engine.janitor import SnapshotGroup, retention_victims
from backups.engine.planner import (
    BaseSnapshot,
    DiskFacts,
    DiskMode,
    FullReason,
    RemoteBase,
    RemoteBaseStatus,
    plan_disks,
)

SIZE = 16 * 2**20


def base(chain: int = 0, size: int = SIZE, stamp: str = "20261128T010000Z") -> BaseSnapshot:
    return BaseSnapshot("OpaqueRef:b", "b0000000-0000-4000-8000-000000000000", size, chain, stamp)


def ok(remote: str = "nas1") -> RemoteBase:
    return RemoteBase(
        remote, remote, RemoteBaseStatus.OK, f"xo-vm-backups/v/vdis/j/d/{base().datetime}.vhd"
    )


def facts(**fields) -> DiskFacts:
    fields.setdefault("vdi_uuid", "d0000000-0000-4000-8000-000000000000")
    fields.setdefault("vdi_name", "disk")
    fields.setdefault("virtual_size", SIZE)
    fields.setdefault("base", base())
    fields.setdefault("previously_backed_up", True)
    fields.setdefault("remote_bases", (ok("nas1"), ok("nas2")))
    return DiskFacts(**fields)


def plan(disks, **options):
    options.setdefault("job_name", "nightly")
    options.setdefault("job_mode", "delta")
    options.setdefault("schedule_name", "daily")
    options.setdefault("force_full", False)
    options.setdefault("full_interval", 0)
    options.setdefault("max_chain_length", 0)
    return plan_disks(disks, **options)


def only(disk: DiskFacts, **options):
    (result,) = plan([disk], **options)
    return result.mode, result.reason_code, result.reason


def test_a_delta_on_a_sound_base():
    mode, code, reason = only(facts(base=base(chain=2)))
    assert (mode, code) == (DiskMode.DELTA, None)
    assert reason == "delta on 20261128T010000Z (3 deltas since the last full)"


def test_each_reason_and_its_sentence():
    assert only(facts(), job_mode="full")[1:] == (
        FullReason.JOB_MODE_FULL,
        "full: job 'nightly' makes full backups only",
    )
    assert only(facts(), force_full=True, schedule_name="sunday")[1:] == (
        FullReason.FORCED_BY_SCHEDULE,
        "full: the schedule 'sunday' forces full backups",
    )
    assert only(facts(base=None, previously_backed_up=False))[1:] == (
        FullReason.FIRST_BACKUP,
        "full: first backup of this disk by job 'nightly'",
    )
    assert only(facts(base=None))[1] == FullReason.BASE_SNAPSHOT_GONE
    assert only(facts(virtual_size=2 * SIZE))[1:] == (
        FullReason.DISK_RESIZED,
        f"full: the disk was resized from {SIZE} to {2 * SIZE} bytes since the backup "
        "20261128T010000Z",
    )
    assert only(facts(base=base(chain=4)), full_interval=5)[1] == FullReason.FULL_INTERVAL
    assert only(facts(base=base(chain=3)), full_interval=5)[0] == DiskMode.DELTA
    assert only(facts(base=base(chain=3)), max_chain_length=3)[1:] == (
        FullReason.CHAIN_LIMIT,
        "full: the chain of this disk reached its limit of 3 deltas",
    )
    missing = RemoteBase("r2", "nas2", RemoteBaseStatus.MISSING, "x/20261128T010000Z.vhd")
    assert only(facts(remote_bases=(ok(), missing)))[1:] == (
        FullReason.BASE_BACKUP_MISSING,
        "full: base backup 20261128T010000Z.vhd is missing on remote 'nas2'",
    )
    invalid = RemoteBase("r1", "nas1", RemoteBaseStatus.INVALID, "x/a.vhd", "bad footer")
    assert only(facts(remote_bases=(invalid,)))[1:] == (
        FullReason.BASE_BACKUP_INVALID,
        "full: base backup a.vhd on remote 'nas1' fails its check: bad footer",
    )
    unverified = RemoteBase("r1", "nas1", RemoteBaseStatus.UNVERIFIED, "x/a.vhd")
    assert only(facts(remote_bases=(unverified,)))[1] == FullReason.BASE_UNVERIFIED


def test_a_new_disk_is_told_from_a_first_backup():
    new, old = plan([facts(base=None, previously_backed_up=False), facts(vdi_uuid="other")])
    assert (new.reason_code, old.mode) == (FullReason.NEW_DISK, DiskMode.DELTA)
    assert new.reason == "full: new disk, not in the previous backup"


def test_the_interval_counts_the_longest_chain_of_the_vm_as_xo_does():
    short, long = plan(
        [facts(base=base(chain=0)), facts(vdi_uuid="other", base=base(chain=2))],
        full_interval=3,
    )
    assert short.reason_code == long.reason_code == FullReason.FULL_INTERVAL
    assert (
        short.reason
        == "full: job 'nightly' makes a full every 3 backups and the chain holds 2 deltas"
    )


reasons_strategy = st.fixed_dictionaries(
    {
        "chain": st.integers(0, 40),
        "has_base": st.booleans(),
        "previously": st.booleans(),
        "resized": st.booleans(),
        "statuses": st.lists(st.sampled_from(list(RemoteBaseStatus)), min_size=1, max_size=3),
        "mode": st.sampled_from(["delta", "full"]),
        "force": st.booleans(),
        "interval": st.integers(0, 10),
        "limit": st.integers(0, 10),
    }
)


@settings(max_examples=300, deadline=None)
@given(reasons_strategy)
def test_properties_of_any_plan(case):
    disk = facts(
        base=base(chain=case["chain"]) if case["has_base"] else None,
        previously_backed_up=case["previously"],
        virtual_size=SIZE * (2 if case["resized"] else 1),
        remote_bases=tuple(
            RemoteBase(f"r{i}", f"nas{i}", status, "x/y.vhd")
            for i, status in enumerate(case["statuses"])
        ),
    )
    (result,) = plan(
        [disk],
        job_mode=case["mode"],
        force_full=case["force"],
        full_interval=case["interval"],
        max_chain_length=case["limit"],
    )
    if result.mode == DiskMode.DELTA:
        # A delta needs everything to be right, and counts one more delta.
        assert case["mode"] == "delta" and not case["force"] and case["has_base"]
        assert not case["resized"]
        assert set(case["statuses"]) == {RemoteBaseStatus.OK}
        assert result.base is not None and result.chain_length == case["chain"] + 1
        assert not case["interval"] or case["interval"] > case["chain"] + 1
        assert not case["limit"] or case["chain"] < case["limit"]
        assert result.reason_code is None and result.reason.startswith("delta on ")
    else:
        assert result.reason_code is not None and result.reason.startswith("full: ")
        assert result.chain_length == 0 and result.base is None


def group(stamp: str, schedule: str = "daily", exported: bool = True) -> SnapshotGroup:
    mark = {"xoweb:backup:exported": "true"} if exported else {}
    return SnapshotGroup(stamp, schedule, vdis={f"OpaqueRef:{stamp}": {"other_config": mark}})


def test_snapshot_retention_keeps_the_base_and_n_beyond_it_per_schedule():
    groups = [
        group("20261101T000000Z"),
        group("20261102T000000Z", "sunday"),
        group("20261103T000000Z"),
        group("20261104T000000Z"),
        group("20261105T000000Z", exported=False),
    ]
    victims = retention_victims(groups, job_mode="delta", retention_by_schedule={"daily": 1})
    # Base: the 4th (newest exported); beyond it daily keeps one more: the 3rd. Sunday's is
    # not ours to judge (its retention is unknown); the unexported one is the janitor's.
    assert [g.timestamp for g in victims] == ["20261101T000000Z"]
    victims = retention_victims(
        groups, job_mode="delta", retention_by_schedule={"daily": 0, "sunday": 0}
    )
    assert [g.timestamp for g in victims] == [
        "20261101T000000Z",
        "20261102T000000Z",
        "20261103T000000Z",
    ]
    # A full job needs no base.
    victims = retention_victims(groups, job_mode="full", retention_by_schedule={"daily": 0})
    assert [g.timestamp for g in victims] == [
        "20261101T000000Z",
        "20261103T000000Z",
        "20261104T000000Z",
    ]
