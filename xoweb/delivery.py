"""How Celery delivers each kind of task: the policy is chosen per task, not for all of them.

* **Short tasks**, the default for every task (the periodic sweeps, a cancel, a ping): a worker
  acknowledges the message when one of its processes starts the task, and the task has a time
  limit of ``XOWEB_TASK_TIME_LIMIT`` seconds. If its process or host dies, the message is gone:
  harmless, since these are periodic or asked again by a person.
* **Backup tasks**, declared with :func:`backup_task`: the message is acknowledged only when the
  task returns (``acks_late``) and is given back to the broker when the worker process running
  it dies (``reject_on_worker_lost``); they run on the ``backups`` queue (whose workers use a
  fresh process per task, ``--max-tasks-per-child``) with a time limit of
  ``XOWEB_BACKUP_MAX_HOURS`` (and a soft limit five minutes earlier, so a run can record that
  it was stopped). A backup task can therefore be delivered more than once, and must be safe to
  run twice: it claims its run row with a conditional UPDATE and keeps the claim alive with a
  heartbeat (``tasks.heartbeat``), so a second delivery of a run that is alive ends at once,
  and one whose claimer stopped beating takes the run over.

The broker's visibility timeout is one option for the whole Redis transport, not per task:
a message not acknowledged within ``XOWEB_BROKER_VISIBILITY_SECONDS`` (15 min by default) is
handed out again. It is short, so that the backup of a worker host that died comes back within
minutes rather than days; a backup that runs longer than it is delivered a second time while
it runs, which its claim makes harmless (the second delivery sees the run alive and ends).
README.md "Workers and redelivery" says the same to operators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.conf import settings

BACKUPS_QUEUE = "backups"


def backup_options() -> dict[str, Any]:
    """The Celery options every backup task gets (see the module docstring)."""
    return {
        "backup": True,  # our mark, read by route()
        "acks_late": True,
        "reject_on_worker_lost": True,
        "time_limit": settings.BACKUP_TIME_LIMIT,
        "soft_time_limit": settings.BACKUP_SOFT_TIME_LIMIT,
    }


def backup_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """Declare a backup task: ``@backup_task("backups.tasks.run_backup", bind=True)``.

    The task must claim its run row before working (a conditional UPDATE) and hold it with the
    process's heartbeat, since its message may be delivered again (module docstring).
    """
    return shared_task(name=name, **{**backup_options(), **options})


def route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any) -> Any:
    """The Celery router (``task_routes``): backup tasks go to the ``backups`` queue, so that
    hosts can be given to backups alone; every other task to the default queue."""
    if getattr(task, "backup", False) or name.startswith("backups.tasks."):
        return {"queue": BACKUPS_QUEUE}
    return None
