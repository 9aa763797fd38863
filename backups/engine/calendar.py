"""The next runs of a job, disk by disk: full or delta, and why, before they happen.

Pure, like the planner it calls: the state each disk's next backup starts from (its base and
chain, as the last runs left them) and the schedules' next moments in, one plan per run out.
It decides nothing itself: each run is ``planner.plan_disks`` (the same call ``backup_vm``
makes), and its plan becomes the next run's base, as a committed backup does. So the calendar
says what the runs will do exactly as long as they succeed and nobody touches the pool or the
remotes in between; it cannot foresee a failed run, a base deleted by hand or a disk resized.

Two schedules firing at the same moment start two runs of one job, and a job never runs twice
at once: one of them is skipped. The calendar plans the first it lists (the order of the
schedules given) and marks the other skipped, saying which one ran instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .planner import BaseSnapshot, DiskFacts, DiskMode, DiskPlan, FullReason, plan_disks
from .values import JobSettings


@dataclass(frozen=True)
class UpcomingRun:
    """One firing of one schedule."""

    at: datetime
    schedule_id: str
    schedule_name: str
    force_full: bool


@dataclass(frozen=True)
class PlannedDisk:
    vdi_uuid: str
    vdi_name: str
    mode: DiskMode
    reason_code: FullReason | None
    reason: str
    chain_length: int  # deltas since the last full once this backup is done


@dataclass
class PlannedRun:
    run: UpcomingRun
    vms: dict[str, list[PlannedDisk]] = field(default_factory=dict)  # vm uuid → its disks
    skipped: str = ""  # why this firing will not run (another run of the job at that moment)

    @property
    def disks(self) -> list[PlannedDisk]:
        return [disk for disks in self.vms.values() for disk in disks]


def plan_calendar(
    job: JobSettings,
    vms: Mapping[str, Sequence[DiskFacts]],
    runs: Sequence[UpcomingRun],
) -> list[PlannedRun]:
    """The plan of every run in ``runs`` (in time order), from the disks' facts now.

    Steps, for each run in order: skip it if another run of the job starts at the same
    moment; else plan each VM's disks with the planner; then each disk's plan becomes its
    base for the next run (a full starts a chain, a delta lengthens it), on every remote.
    """
    state = {vm_uuid: list(disks) for vm_uuid, disks in vms.items()}
    planned: list[PlannedRun] = []
    started: dict[datetime, str] = {}
    for run in sorted(runs, key=lambda run: run.at):
        entry = PlannedRun(run)
        planned.append(entry)
        if run.at in started:
            entry.skipped = (
                f"skipped: the schedule '{started[run.at]}' starts a run of the job at the "
                "same moment, and a job never runs twice at once"
            )
            continue
        started[run.at] = run.schedule_name
        stamp = run.at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        for vm_uuid, disks in state.items():
            plans = plan_disks(
                disks,
                job_name=job.name,
                job_mode=job.mode,
                schedule_name=run.schedule_name,
                force_full=run.force_full,
                full_interval=job.full_interval,
                max_chain_length=job.max_chain_length,
            )
            entry.vms[vm_uuid] = [
                PlannedDisk(
                    disk.vdi_uuid,
                    disk.vdi_name,
                    plan.mode,
                    plan.reason_code,
                    plan.reason,
                    plan.chain_length,
                )
                for disk, plan in zip(disks, plans, strict=True)
            ]
            state[vm_uuid] = [
                _after(disk, plan, stamp) for disk, plan in zip(disks, plans, strict=True)
            ]
    return planned


def _after(disk: DiskFacts, plan: DiskPlan, stamp: str) -> DiskFacts:
    """The disk's facts once this backup is committed on every remote: its snapshot is the
    next base, with the plan's chain length."""
    base = BaseSnapshot(
        vdi_ref=f"(planned {stamp})",
        vdi_uuid=f"(planned {stamp})",
        virtual_size=disk.virtual_size,
        chain_length=plan.chain_length,
        datetime=stamp,
    )
    return replace(disk, base=base, previously_backed_up=True, remote_bases=())
