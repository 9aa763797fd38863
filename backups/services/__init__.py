"""The only bridge between the backups models and the backup engine (``backups.engine``).

Rows become the engine's plain values here (:mod:`.bridge`), the engine runs in Celery worker
processes (thin tasks in ``backups/tasks.py`` call these functions), and its outcomes are stored
back in rows. The pages, the admin and the commands call these functions too; none of them
talks to XAPI or to a remote's files directly, and the web process never waits on a backup.

* :mod:`.remotes`: a remote's check (write test, space) and its adapter;
* :mod:`.selection`: the VMs a job backs up, from the live pool cache;
* :mod:`.runs`: create (a page, a command, a schedule's firing), claim, start and finish runs;
* :mod:`.fanout`: send waiting VMs to the workers within the job's and the pools' limits;
* :mod:`.vm_backups`: back up one VM (claimed once per try), then hand the run on;
* :mod:`.takeover`: a VM whose worker died: backed up again, or ended with the reason;
* :mod:`.sweep`: the periodic sweep of runs (dead workers, lost messages, free slots);
* :mod:`.cancel`: cancel a run or one VM of it;
* :mod:`.reports`: what a run did, per VM and disk, for its page and the mailed report;
* :mod:`.heartbeat`: who backs a VM up, and whether that process is alive;
* :mod:`.restore_points`: the restore point index, rebuilt from the remotes;
* :mod:`.restores`: restores of a disk or a VM.
"""
