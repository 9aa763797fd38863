"""What the backup tests with real processes share: short beats and leases, so that a process
that dies is noticed within seconds, and helpers to read the simulator and the remote."""

from __future__ import annotations

from pathlib import Path

#: The environment of the worker (and beat) processes of the backup tests.
WORKER_ENV = {
    "BACKUP_HEARTBEAT_TIMEOUT": "4",
    "BACKUP_LOCK_LEASE_SECONDS": "4",
    "BACKUP_LOCK_HEARTBEAT_SECONDS": "1",
    "TASK_HEARTBEAT_SECONDS": "1",
    "TASK_INTERRUPTED_AFTER_SECONDS": "4",
}


def real_files(remote: Path) -> dict[str, int]:
    """Every file of a remote under its real name (not a dot-named temporary file), with its
    size: what a reader of the remote sees."""
    return {
        str(path.relative_to(remote)): path.stat().st_size
        for path in remote.rglob("*")
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(remote).parts)
    }


def snapshots_of(sim) -> dict[str, int]:
    """How many snapshots each disk of the simulator has: {source VDI uuid: count} (a running
    VM is snapshotted whole, a halted one disk by disk: both leave snapshot VDIs)."""
    xenapi = sim.session().xenapi
    records = xenapi.VDI.get_all_records()
    found: dict[str, int] = {}
    for record in records.values():
        if record["is_a_snapshot"]:
            source = records.get(record["snapshot_of"], {}).get("uuid", record["snapshot_of"])
            found[source] = found.get(source, 0) + 1
    return found


def sweep_every_second() -> None:
    """Beat fires the sweep of runs every second (not 30 s): a test's short timeouts hold. The
    entry is made again if a transactional test before this one flushed the migration's."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.update_or_create(
        name="backups: sweep runs",
        defaults={"task": "backups.sweep_runs", "interval": every_second, "enabled": True},
    )
