"""Models of the backups app: where backups go (remotes), what to back up and when (jobs,
schedules), what happened (runs, VM backups, disks), what exists (restore points), what was
given back (restores) and what was proven (verifications and their verdicts, restore tests).
One module per idea; they are all importable from here."""

from backups.models.health_checks import HealthCheck
from backups.models.jobs import BackupJob, Schedule
from backups.models.maintenance import CleanReport
from backups.models.remotes import Remote
from backups.models.restore_points import RestorePoint
from backups.models.restores import Restore
from backups.models.runs import BackupRun, VmBackup, VmBackupDisk
from backups.models.space import RemoteSpaceSample
from backups.models.verification import BackupVerdict, FileVerdict, Verification

__all__ = [
    "BackupJob",
    "BackupRun",
    "BackupVerdict",
    "CleanReport",
    "FileVerdict",
    "HealthCheck",
    "Remote",
    "RemoteSpaceSample",
    "Restore",
    "RestorePoint",
    "Schedule",
    "Verification",
    "VmBackup",
    "VmBackupDisk",
]
