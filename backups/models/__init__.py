"""Models of the backups app: where backups go (remotes), what to back up and when (jobs,
schedules), what happened (runs, VM backups, disks), what exists (restore points) and what
was given back (restores). One module per idea; they are all importable from here."""

from backups.models.jobs import BackupJob, Schedule
from backups.models.maintenance import CleanReport
from backups.models.remotes import Remote
from backups.models.restore_points import RestorePoint
from backups.models.restores import Restore
from backups.models.runs import BackupRun, VmBackup, VmBackupDisk

__all__ = [
    "BackupJob",
    "BackupRun",
    "CleanReport",
    "Remote",
    "Restore",
    "RestorePoint",
    "Schedule",
    "VmBackup",
    "VmBackupDisk",
]
