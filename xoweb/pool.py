"""The Celery pool of xoweb's workers: Celery's prefork pool, which replaces an exited child
process within 50 ms.

Backup workers start a fresh process for every task (``--max-tasks-per-child=1``: a leak or a
crash never outlives its task). Celery's pool notices that a child exited through the child's
sentinel, but often misses it and only finds out at its next maintenance, every 5 seconds: the
next task then waits up to 5 s for a process, which on a run of many VMs costs more than the
backups themselves (benchmarks/bench_runs_overhead.py measures what is left). This pool does
that maintenance (reap exited children, fork their replacements: a ``waitpid`` per process when
nothing exited) every :data:`MAINTAIN_SECONDS`. Every worker uses it, through the setting
``CELERY_WORKER_POOL``.
"""

from __future__ import annotations

from celery.concurrency import asynpool, prefork

MAINTAIN_SECONDS = 0.05


class AsynPool(asynpool.AsynPool):
    @property
    def timers(self):
        return {self.maintain_pool: MAINTAIN_SECONDS}


class TaskPool(prefork.TaskPool):
    Pool = AsynPool
