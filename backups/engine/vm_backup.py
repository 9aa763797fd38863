"""One VM's backup, read top to bottom like XO's VM runner (docs/backup-engine.md §1).

``backup_vm`` walks these steps; any failure ends the walk with a *failed* outcome whose error
is a sentence a person can act on, after the clean-up (an unhealthy VDI chain gives *skipped*):

1. read the VM and its disks (``[NOBAK]`` disks are left out and listed);
2. lock the VM's folder on every remote (a remote that cannot be reached is dropped; a lock
   held by a live process fails the VM);
3. janitor: destroy our snapshots of this job for this VM that were never exported; the clean
   pass of the VM folder on every remote (interrupted merges finished, leftovers of a killed
   run removed: docs/maintenance.md);
4. find each disk's base on the pool and on every remote; decide full or delta and why;
5. check the VDI chains' health (XO's protection) → *skipped*;
6. snapshot (strategy by power state and pool), tagged;
7. transfer each disk to every remote still in (a remote that fails is dropped);
8. commit: the metadata on each remote, last (the commit point);
9. tag the snapshot exported (now the next base);
10. snapshot retention on the pool;
11. on each remote that committed: the schedule's retention, then the clean pass with at most
    ``merges_per_run`` merges of what retention freed (the rest for the next run or a merge
    task).

On failure: this run's snapshot is destroyed, its files (temporary or renamed, never referenced
by a metadata) removed, and the locks released. Exceptions raised by ``progress`` (a cancel)
pass through after the same clean-up; ``progress.check()`` is called between the steps and,
during a transfer, also while the export sends nothing, so that a cancel is seen within about
a second (closing the export's connection is what stops the transfer).
"""

from __future__ import annotations

import logging
import time
import uuid as uuidlib
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from backups import vhd
from pools.xapi import XapiClient, XapiError

from . import layout, tags
from .chain_health import assert_healthy_chains
from .errors import ChainUnhealthy, EngineError, LockHeld, NothingToBackUp, RemoteError
from .janitor import apply_snapshot_retention, clean_leftovers, find_groups, strip_live_marks
from .lock import VmLock
from .maintenance import maintain_vm
from .metadata import build_metadata
from .planner import DiskMode, DiskPlan
from .progress import Progress
from .prune import ScheduleRetention
from .records import vdi_records, vif_records
from .remote import RemoteAdapter
from .snapshots import (
    Snapshot,
    destroy_snapshot,
    mark_exported,
    snapshot_name,
    tag_snapshot,
    take_snapshot,
)
from .transfer import DiskTarget, transfer_disk
from .values import DiskOutcome, JobSettings, KnownBad, ScheduleSettings, VmBackupOutcome
from .vm_disks import VmDisk, read_vm, vm_disks
from .vm_plan import plan_vm_backup
from .watch import Watched

logger = logging.getLogger(__name__)


def backup_vm(
    client: XapiClient,
    vm_uuid: str,
    *,
    job: JobSettings,
    schedule: ScheduleSettings,
    remotes: Sequence[RemoteAdapter],
    progress: Progress,
    holder: str,
    clock: Callable[[], float] = time.time,
    lock_lease: float = 60.0,
    lock_heartbeat: float = 10.0,
    known_bad: KnownBad | None = None,
    merges_per_run: int | None = 2,
    merge_batch_bytes: int = 256 * 2**20,
    lock_wait: float = 0.0,
) -> VmBackupOutcome:
    """Back up one VM to ``remotes`` (see the module docstring for the steps).

    ``merges_per_run``: merges the clean pass after the backup may do on each remote (None:
    all; the rest is reported in ``outcome.maintenance``). ``lock_wait``: seconds to wait for
    a VM folder's lock a live process holds (a merge task) before failing with its holder.
    """
    run = _VmBackup(
        client,
        vm_uuid,
        job,
        schedule,
        list(remotes),
        Watched(progress),
        holder,
        clock,
        lock_lease,
        lock_heartbeat,
        known_bad,
    )
    run.merges_per_run = merges_per_run
    run.merge_batch_bytes = merge_batch_bytes
    run.lock_wait = lock_wait
    return run.run()


class _VmBackup:
    def __init__(
        self,
        client: XapiClient,
        vm_uuid: str,
        job: JobSettings,
        schedule: ScheduleSettings,
        remotes: list[RemoteAdapter],
        progress: Watched,
        holder: str,
        clock: Callable[[], float],
        lock_lease: float,
        lock_heartbeat: float,
        known_bad: KnownBad | None,
    ) -> None:
        self.client = client
        self.job = job
        self.schedule = schedule
        self.remotes = remotes
        self.progress = progress
        self.holder = holder
        self.clock = clock
        self.lock_lease = lock_lease
        self.lock_heartbeat = lock_heartbeat
        self.known_bad = known_bad
        self.outcome = VmBackupOutcome(vm_uuid=vm_uuid)
        self.locks: dict[str, VmLock] = {}
        self.snapshot: Snapshot | None = None
        self.exported = False
        self.written: dict[str, list[str]] = {}  # remote id → files this run renamed
        self.merges_per_run: int | None = 2
        self.merge_batch_bytes = 256 * 2**20
        self.lock_wait = 0.0

    @property
    def vm_uuid(self) -> str:
        return self.outcome.vm_uuid

    def live(self) -> list[RemoteAdapter]:
        return [r for r in self.remotes if r.remote_id not in self.outcome.failed_remotes]

    def drop(self, remote: RemoteAdapter | str, why: str) -> None:
        remote_id = remote if isinstance(remote, str) else remote.remote_id
        self.outcome.failed_remotes.setdefault(remote_id, why)
        self.progress.warning(f"remote dropped from this backup: {why}")
        if not self.live():
            raise EngineError(
                "no remote is left to write to: " + "; ".join(self.outcome.failed_remotes.values())
            )

    def note(self, message: str) -> None:
        self.outcome.warnings.append(message)
        self.progress.info(message)

    # -- the walk ------------------------------------------------------------------------

    def run(self) -> VmBackupOutcome:
        started = time.monotonic()
        outcome = self.outcome
        try:
            self.walk()
        except BaseException as error:
            if self.exported and not self.progress.stopped(error) and isinstance(error, Exception):
                # Committed and marked: what failed after (retention) does not undo the backup.
                logger.exception("after the backup of VM %s", self.vm_uuid)
                self.note(f"the backup is committed, but what came after failed: {error}")
                return outcome
            if isinstance(error, ChainUnhealthy | NothingToBackUp):
                outcome.status, outcome.error = "skipped", str(error)
            elif isinstance(error, EngineError | XapiError):
                outcome.status, outcome.error = "failed", str(error)
            else:
                outcome.status = "failed"
                outcome.error = str(error) or type(error).__name__
            self.clean_up()
            if self.progress.stopped(error) or not isinstance(error, Exception):
                raise
            if not isinstance(error, EngineError | XapiError):
                logger.exception("backup of VM %s failed unexpectedly", self.vm_uuid)
            self.progress.warning(outcome.error)
        finally:
            self.release()
            outcome.duration = time.monotonic() - started
        return outcome

    def walk(self) -> None:
        client, job = self.client, self.job
        vm_ref, vm = read_vm(client, self.vm_uuid)
        self.outcome.vm_name = vm.get("name_label", "")
        every_disk = vm_disks(client, vm)
        disks = [disk for disk in every_disk if not disk.nobak]
        nobak = [disk for disk in every_disk if disk.nobak]
        for disk in nobak:
            why = f"{disk.label} is not backed up: its name contains [NOBAK]"
            self.outcome.skipped_disks.append((disk.uuid, why))
            self.progress.info(why)
        if not disks:
            raise NothingToBackUp("no disks to back up: every disk is [NOBAK], or the VM has none")

        self.take_locks()
        with self.progress.subtask("clean up leftovers", kind="snapshot-retention") as step:
            strip_live_marks(client, vm_ref, vm, every_disk)
            groups = find_groups(client, vm, every_disk, job_id=job.id, vm_uuid=self.vm_uuid)
            clean_leftovers(client, groups, report=step.info)
        for remote in self.live():
            # Before planning: a merge interrupted there is finished, so bases read as they are.
            self.maintain(remote, merges=0)

        plans, timestamp = plan_vm_backup(
            client,
            disks,
            vm_uuid=self.vm_uuid,
            job=job,
            schedule=self.schedule,
            remotes=self.live(),
            known_bad=self.known_bad,
            clock=self.clock,
            drop=self.drop,
            report=self.progress.info,
        )
        assert_healthy_chains(client, disks)
        self.outcome.timestamp = timestamp

        # A cancel is looked for between steps too (a step may not write progress at all).
        self.progress.check()
        with self.progress.subtask("snapshot", kind="snapshot") as step:
            self.snapshot = take_snapshot(
                client,
                vm_ref,
                vm,
                disks,
                nobak,
                name=snapshot_name(job.name, vm.get("name_label", "")),
                job_id=job.id,
                progress=step,
            )
            self.tag(plans, timestamp)
        self.outcome.snapshot_uuid = self.snapshot.uuid

        for disk, plan in zip(disks, plans, strict=True):
            self.progress.check()
            self.transfer(disk, plan, timestamp)

        self.progress.check()  # the last moment a cancel stops the backup: next is the commit
        with self.progress.subtask("commit", kind="commit"):
            self.commit(vm, plans, timestamp)
            self.outcome.status = "partial" if self.outcome.failed_remotes else "success"
            try:
                mark_exported(client, self.snapshot)
                self.exported = True
            except XapiError as error:
                # The backup is on the remotes; only the next delta loses its base (the janitor
                # removes the unmarked snapshot and the next run is a full, saying why).
                self.note(f"the snapshot could not be marked exported: {error}")
                return

        with self.progress.subtask("snapshot retention", kind="snapshot-retention") as step:
            try:
                # Fresh records: the ones read at the start do not list this run's snapshot.
                vm = client.call("VM.get_record", vm_ref)
                every_disk = vm_disks(client, vm)
                groups = find_groups(client, vm, every_disk, job_id=job.id, vm_uuid=self.vm_uuid)
                retention = {**job.snapshot_retention_by_schedule}
                retention[self.schedule.id] = self.schedule.snapshot_retention
                apply_snapshot_retention(
                    client,
                    groups,
                    job_mode=job.mode,
                    retention_by_schedule=retention,
                    report=step.warning,
                )
            except XapiError as error:  # the backup is committed: a warning, not a failure
                self.note(f"snapshot retention did not finish: {error}")

        for remote in self.live():
            if remote.remote_id in self.outcome.metadata:
                self.maintain(
                    remote,
                    merges=self.merges_per_run,
                    retention=[ScheduleRetention(job.id, self.schedule.id, self.schedule.policy)],
                )

    # -- steps ---------------------------------------------------------------------------

    def maintain(
        self,
        remote: RemoteAdapter,
        *,
        merges: int | None,
        retention: list[ScheduleRetention] | None = None,
    ) -> None:
        """The clean pass (and retention) of the VM folder under the lock this run holds.

        A failure there is a warning: the backup (before: the remote) is not given up for it.
        """
        try:
            report = maintain_vm(
                remote,
                self.vm_uuid,
                retention=retention or (),
                merges=merges,
                lock=self.locks[remote.remote_id],
                progress=self.progress,
                batch_bytes=self.merge_batch_bytes,
            )
        except (EngineError, vhd.VhdError, OSError) as error:
            if self.progress.stopped(error):
                raise
            self.note(f"the clean pass on {remote} did not finish: {error}")
            return
        self.outcome.maintenance.setdefault(remote.remote_id, []).append(report)

    def take_locks(self) -> None:
        with self.progress.subtask(
            f"lock the VM folder on {len(self.remotes)} remotes", kind="lock"
        ):
            if not self.remotes:
                raise EngineError("the job has no remote to write to")
            for remote in self.remotes:
                try:
                    lock = remote.lock(
                        self.vm_uuid,
                        holder=self.holder,
                        lease=self.lock_lease,
                        heartbeat=self.lock_heartbeat,
                        clock=self.clock,
                    )
                    self.locks[remote.remote_id] = lock.acquire(wait=self.lock_wait)
                except LockHeld:
                    raise
                except RemoteError as error:
                    self.drop(remote, str(error))

    def tag(self, plans: list[DiskPlan], timestamp: str) -> None:
        assert self.snapshot is not None
        marks = {}
        common = dict(
            job_id=self.job.id,
            schedule_id=self.schedule.id,
            vm_uuid=self.vm_uuid,
            timestamp=timestamp,
        )
        by_disk = {plan.vdi_uuid: plan for plan in plans}
        for source_uuid, disk in self.snapshot.disks.items():
            marks[disk.vdi_ref] = tags.snapshot_tags(
                chain_length=by_disk[source_uuid].chain_length, **common
            )
        if self.snapshot.vm_ref:
            longest = max(plan.chain_length for plan in plans)
            marks[self.snapshot.vm_ref] = tags.snapshot_tags(chain_length=longest, **common)
        tag_snapshot(self.client, self.snapshot, marks)

    def transfer(self, disk: VmDisk, plan: DiskPlan, timestamp: str) -> None:
        assert self.snapshot is not None
        snap = self.snapshot.disks[disk.uuid]
        relpath = layout.vhd_path(self.vm_uuid, self.job.id, disk.uuid, timestamp)
        base = None
        if plan.mode == DiskMode.DELTA:
            assert plan.base is not None
            first = next(
                b for b in plan.remote_bases if b.remote_id in {r.remote_id for r in self.live()}
            )
            parent = vhd.ParentLink(
                uuidlib.UUID(plan.base.vdi_uuid),
                PurePosixPath(first.path).name,
                first.timestamp,
            )
            base = (plan.base.vdi_ref, parent)
        outcome = DiskOutcome(
            vdi_uuid=disk.uuid,
            vdi_name=disk.name,
            userdevice=disk.userdevice,
            snapshot_vdi_uuid=snap.uuid,
            mode=plan.mode,
            reason_code=plan.reason_code,
            reason=plan.reason,
            size=disk.virtual_size,
        )
        self.outcome.disks.append(outcome)
        with self.progress.subtask(
            f"transfer {disk.label}", kind="transfer", total=disk.virtual_size
        ) as step:
            result = transfer_disk(
                self.client,
                vdi_ref=snap.vdi_ref,
                vdi_uuid=snap.uuid,
                base=base,
                targets=[DiskTarget(remote, relpath) for remote in self.live()],
                progress=step,
                label=f"{disk.label} of VM '{self.outcome.vm_name}'",
            )
        for remote_id, why in result.failed.items():
            self.drop(remote_id, why)
        for remote_id, path in result.files.items():
            self.written.setdefault(remote_id, []).append(path)
        outcome.bytes, outcome.sha256, outcome.duration = (
            result.bytes,
            result.sha256,
            result.duration,
        )
        outcome.files = dict(result.files)

    def commit(self, vm: dict, plans: list[DiskPlan], timestamp: str) -> None:
        """The metadata on each remote still in: the commit point of the backup there."""
        assert self.snapshot is not None
        snapshot = self.snapshot
        bases = {plan.vdi_uuid: plan.base.vdi_uuid for plan in plans if plan.base is not None}
        by_disk = {disk.vdi_uuid: disk for disk in self.outcome.disks}
        vhds, differencing, extra = {}, {}, {}
        for source_uuid, disk in snapshot.disks.items():
            done = by_disk[source_uuid]
            vhds[disk.vdi_ref] = layout.vhd_in_vm(self.job.id, source_uuid, timestamp)
            differencing[disk.vdi_ref] = done.mode == DiskMode.DELTA
            extra[disk.vdi_ref] = {
                "sha256": done.sha256,
                "mode": str(done.mode),
                "reason": done.reason,
                "reasonCode": str(done.reason_code) if done.reason_code else None,
                "size": done.bytes,
            }
        data = build_metadata(
            job_id=self.job.id,
            job_mode=self.job.mode,
            schedule_id=self.schedule.id,
            timestamp=timestamp,
            vm=vm,
            vm_snapshot=snapshot.vm_record,
            vbds=snapshot.vbds,
            vdis=vdi_records(self.client, snapshot, vm_uuid=self.vm_uuid, bases=bases),
            vifs=vif_records(self.client, snapshot.vm_record),
            vhds=vhds,
            differencing=differencing,
            disks=extra,
            size=sum(disk.bytes for disk in self.outcome.disks),
        )
        for remote in self.live():
            try:
                self.locks[remote.remote_id].check()
                relpath = remote.write_metadata(self.vm_uuid, f"{timestamp}.json", data)
            except (RemoteError, EngineError) as error:
                self.discard_files(remote)
                self.drop(remote, str(error))
                continue
            self.outcome.metadata[remote.remote_id] = relpath

    # -- clean-up ------------------------------------------------------------------------

    def discard_files(self, remote: RemoteAdapter) -> None:
        """Remove the files this run renamed on ``remote`` (no metadata names them)."""
        for relpath in self.written.pop(remote.remote_id, []):
            try:
                remote.fs.unlink(remote.path(relpath))
            except OSError as error:
                logger.warning("cannot remove %s on %s: %s", relpath, remote, error)

    def clean_up(self) -> None:
        for remote in self.remotes:
            if remote.remote_id not in self.outcome.metadata:
                self.discard_files(remote)
        if self.snapshot is not None and not self.exported:
            try:
                left = destroy_snapshot(self.client, self.snapshot.vm_ref, self.snapshot.vdi_refs)
            except XapiError as error:
                left = [str(error)]
            if left:
                self.note("this run's snapshot could not be removed now; the next run removes it")

    def release(self) -> None:
        for lock in self.locks.values():
            lock.release()
        self.locks.clear()
