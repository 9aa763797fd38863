"""The only bridge between the backups models and the backup engine (``backups.engine``).

Rows become the engine's plain values here (:mod:`.bridge`), the engine runs in Celery worker
processes (thin tasks in ``backups/tasks.py`` call these functions), and its outcomes are stored
back in rows. The pages, the admin and the commands call these functions too; none of them
talks to XAPI or to a remote's files directly, and the web process never waits on a backup.

* :mod:`.remotes`: a remote's check (write test, space) and its adapter;
* :mod:`.selection`: the VMs a job backs up, from the live pool cache;
* :mod:`.runs`: create, claim, fan out and finish runs; back up one VM;
* :mod:`.restore_points`: the restore point index, rebuilt from the remotes;
* :mod:`.restores`: restores of a disk or a VM.
"""
