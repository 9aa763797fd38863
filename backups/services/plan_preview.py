"""The plan preview of a job: what it takes, and its next runs disk by disk, before they happen.

What it shows (the job's page, and its form while it is edited):

* the VMs the job takes, and those it leaves out with why (a rule's tags or power state, a pool
  not live, a VM gone), each with its disks, ``[NOBAK]`` ones struck out, and their sizes;
* a calendar of the next runs of every enabled schedule, each disk full or delta and why
  (forced, interval, chain limit, first backup…), with the transfer expected from the last
  runs of the disk.

Steps of :func:`preview`: resolve the VMs (``selection.resolve``, the rule the runs use); read
each disk's state from the job's committed backups (its last snapshot, still on the pool or
not; its chain of deltas since the last full; whether each remote still indexes it); list the
schedules' next moments; hand all of it to the engine's calendar, which plans each run with the
engine's own planner. Nothing here decides full or delta.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import mean

from django.utils import timezone

from backups.choices import DiskMode, VmBackupStatus
from backups.models import BackupJob, Remote, RestorePoint, Schedule, VmBackupDisk
from backups.services import bridge, selection
from pools.models import VDI

#: Runs shown in the calendar, and deltas averaged for the expected size of the next one.
CALENDAR_RUNS = 10
DELTAS_AVERAGED = 5
#: Committed disk backups read per job (newest first): enough for chains of any sane length.
HISTORY_ROWS = 2000


@dataclass
class PreviewDisk:
    vdi_uuid: str
    name: str
    size: int
    userdevice: str = ""
    excluded: str = ""  # why it is not backed up ("" when it is)
    last_full_bytes: int | None = None  # bytes of its last full, from the runs
    delta_bytes: int | None = None  # mean bytes of its last deltas
    chain: int | None = None  # deltas since its last full (None: no backup yet)

    def expected(self, mode: str) -> int | None:
        return self.last_full_bytes if mode == DiskMode.FULL else self.delta_bytes


@dataclass
class PreviewVm:
    uuid: str
    name: str
    pool: str = ""
    excluded: str = ""
    disks: list[PreviewDisk] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(disk.size for disk in self.disks if not disk.excluded)


@dataclass
class CalendarDisk:
    vm: PreviewVm
    disk: PreviewDisk
    mode: str
    reason: str
    reason_code: str
    expected: int | None


@dataclass
class CalendarRun:
    at: datetime
    schedule: str
    force_full: bool
    skipped: str = ""
    disks: list[CalendarDisk] = field(default_factory=list)

    @property
    def fulls(self) -> int:
        return sum(1 for disk in self.disks if disk.mode == DiskMode.FULL)

    @property
    def deltas(self) -> int:
        return sum(1 for disk in self.disks if disk.mode == DiskMode.DELTA)

    @property
    def expected(self) -> int:
        """Bytes expected from the last runs (disks with no history left out: see ``unknown``)."""
        return sum(disk.expected or 0 for disk in self.disks)

    @property
    def unknown(self) -> int:
        return sum(1 for disk in self.disks if disk.expected is None)

    @property
    def reasons(self) -> list[tuple[str, int]]:
        """Each reason for a full, with how many disks it makes full."""
        counts: dict[str, int] = defaultdict(int)
        for disk in self.disks:
            if disk.mode == DiskMode.FULL:
                counts[disk.reason] += 1
        return sorted(counts.items())


@dataclass
class Preview:
    vms: list[PreviewVm]
    calendar: list[CalendarRun]
    notes: list[str] = field(default_factory=list)

    @property
    def taken(self) -> list[PreviewVm]:
        return [vm for vm in self.vms if not vm.excluded]

    @property
    def size(self) -> int:
        return sum(vm.size for vm in self.taken)


def preview(
    job: BackupJob,
    *,
    schedules: Sequence[Schedule] | None = None,
    remotes: Sequence[Remote] | None = None,
    now: datetime | None = None,
    count: int = CALENDAR_RUNS,
) -> Preview:
    """The preview of ``job`` at ``now``; an unsaved job (the form) passes its schedules and
    remotes, a saved one uses its own."""
    now = now or timezone.now()
    if schedules is None:
        schedules = list(job.schedules.all()) if job.pk else []
    if remotes is None:
        remotes = list(job.remotes.all()) if job.pk else []
    chosen = selection.resolve(job)
    vms, facts = _vms(job, chosen, [remote for remote in remotes if remote.enabled])
    notes = [chosen.reason] if chosen.reason else []
    upcoming = _upcoming(schedules, now, count)
    if not [schedule for schedule in schedules if schedule.enabled]:
        notes.append("no enabled schedule: the job runs only when asked")
    planned = bridge.plan_calendar(bridge.job_settings(job), facts, upcoming)
    by_uuid = {vm.uuid: vm for vm in vms}
    calendar = []
    for entry in planned:
        run = CalendarRun(
            entry.run.at, entry.run.schedule_name, entry.run.force_full, entry.skipped
        )
        for vm_uuid, disks in entry.vms.items():
            vm = by_uuid[vm_uuid]
            shown = {disk.vdi_uuid: disk for disk in vm.disks}
            for plan in disks:
                disk = shown[plan.vdi_uuid]
                run.disks.append(
                    CalendarDisk(
                        vm,
                        disk,
                        str(plan.mode),
                        plan.reason,
                        str(plan.reason_code or ""),
                        disk.expected(str(plan.mode)),
                    )
                )
        calendar.append(run)
    return Preview(vms, calendar, notes)


def _upcoming(schedules: Sequence[Schedule], now: datetime, count: int) -> list:
    """The next ``count`` firings of the enabled schedules, in time order (ties keep the
    schedules' order: the calendar plans the first and skips the other)."""
    firings = []
    for order, schedule in enumerate(sorted(schedules, key=lambda s: s.name.lower())):
        if not schedule.enabled:
            continue
        for moment in schedule.next_runs(now, count):
            firings.append((moment, order, schedule))
    firings.sort(key=lambda firing: (firing[0], firing[1]))
    return [
        bridge.upcoming_run(
            at=moment,
            schedule_id=str(schedule.uuid),
            schedule_name=schedule.name,
            force_full=schedule.force_full,
        )
        for moment, _order, schedule in firings[:count]
    ]


def _vms(job: BackupJob, chosen, remotes: Sequence[Remote]) -> tuple[list[PreviewVm], dict]:
    """The VMs shown (taken, then left out) and the planner's facts of each taken VM's disks."""
    planner = bridge.planner()
    disks = selection.disks_of(chosen.vms)
    history = _history(job, [disk for vm_disks in disks.values() for disk in vm_disks])
    snapshots = _cached_snapshots(history)
    points = _indexed_points(job, remotes, history)
    vms, facts = [], {}
    for vm in chosen.vms:
        shown = PreviewVm(vm.uuid, vm.name_label, vm.pool.name)
        vm_facts = []
        for vdi in disks.get(vm.pk, []):
            disk = PreviewDisk(
                vdi.uuid, vdi.name_label, vdi.virtual_size, vdi.userdevice, selection.nobak(vdi)
            )
            shown.disks.append(disk)
            if disk.excluded:
                continue
            rows = history.get(vdi.uuid, [])
            _sizes(disk, rows)
            vm_facts.append(_facts(planner, job, vm.uuid, disk, rows, snapshots, points, remotes))
        vms.append(shown)
        facts[vm.uuid] = vm_facts
    for vm_uuid, why in chosen.missing.items():
        vms.append(PreviewVm(vm_uuid, vm_uuid, excluded=why))
    for vm, why in chosen.excluded:
        shown = PreviewVm(vm.uuid, vm.name_label, vm.pool.name, excluded=why)
        vms.append(shown)
    return vms, facts


def _history(job: BackupJob, vdis: list[VDI]) -> dict[str, list[VmBackupDisk]]:
    """The job's committed backups of these disks, newest first, per disk uuid."""
    if not job.pk or not vdis:
        return {}
    rows = (
        VmBackupDisk.objects.filter(
            vm_backup__run__job=job,
            vm_backup__status__in=[VmBackupStatus.SUCCESS, VmBackupStatus.PARTIAL],
            vdi_uuid__in=[vdi.uuid for vdi in vdis],
        )
        .select_related("vm_backup")
        .order_by("-vm_backup__ended", "-pk")[:HISTORY_ROWS]
    )
    history: dict[str, list[VmBackupDisk]] = defaultdict(list)
    for row in rows:
        history[row.vdi_uuid].append(row)
    return history


def _cached_snapshots(history: dict[str, list[VmBackupDisk]]) -> set[str]:
    """Which of the last snapshots are still in the pools' cache."""
    wanted = {rows[0].snapshot_vdi_uuid for rows in history.values() if rows}
    return set(VDI.objects.filter(uuid__in=wanted).values_list("uuid", flat=True))


def _indexed_points(job: BackupJob, remotes, history) -> set[tuple[int, str, str]]:
    """(remote pk, vm uuid, timestamp) of the job's last backups the remotes still index."""
    stamps = {rows[0].vm_backup.timestamp for rows in history.values() if rows}
    if not stamps or not remotes:
        return set()
    return set(
        RestorePoint.objects.filter(
            remote__in=remotes, job_uuid=str(job.uuid), timestamp__in=stamps
        ).values_list("remote_id", "vm_uuid", "timestamp")
    )


def _sizes(disk: PreviewDisk, rows: list[VmBackupDisk]) -> None:
    fulls = [row.bytes for row in rows if row.mode == DiskMode.FULL]
    deltas = [row.bytes for row in rows if row.mode == DiskMode.DELTA][:DELTAS_AVERAGED]
    disk.last_full_bytes = fulls[0] if fulls else None
    disk.delta_bytes = round(mean(deltas)) if deltas else None
    if rows:
        disk.chain = next(
            (index for index, row in enumerate(rows) if row.mode == DiskMode.FULL), len(rows)
        )


def _facts(planner, job, vm_uuid, disk: PreviewDisk, rows, snapshots, points, remotes):
    """The planner's facts of one disk, as its next backup will find them."""
    if not rows:
        return planner.DiskFacts(disk.vdi_uuid, disk.name, disk.size, None, False)
    last = rows[0]
    if last.snapshot_vdi_uuid not in snapshots:
        # Its snapshot is gone from the pool (deleted by hand, or the pool's cache lost it).
        return planner.DiskFacts(disk.vdi_uuid, disk.name, disk.size, None, True)
    stamp = last.vm_backup.timestamp
    base = planner.BaseSnapshot(
        vdi_ref="",
        vdi_uuid=last.snapshot_vdi_uuid,
        virtual_size=last.size,
        chain_length=disk.chain or 0,
        datetime=stamp,
    )
    remote_bases = tuple(
        planner.RemoteBase(
            str(remote.uuid),
            remote.name,
            planner.RemoteBaseStatus.OK
            if (remote.pk, vm_uuid, stamp) in points
            else planner.RemoteBaseStatus.MISSING,
            bridge.vhd_path(vm_uuid, str(job.uuid), disk.vdi_uuid, stamp),
        )
        for remote in remotes
    )
    return planner.DiskFacts(disk.vdi_uuid, disk.name, disk.size, base, True, remote_bases)
