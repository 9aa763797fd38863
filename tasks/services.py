"""What other code and the periodic tasks call to act on tasks: sweep, prune, cancel."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tasks.choices import TaskStatus
from tasks.models import Task


def mark_interrupted(now=None) -> int:
    """Turn running tasks whose process stopped beating into interrupted ones; return how many.

    Pending children of an interrupted task will never start: they are interrupted too.
    """
    now = now or timezone.now()
    silent = list(Task.objects.silent(now).values_list("pk", flat=True))
    if not silent:
        return 0
    timeout = settings.TASK_INTERRUPTED_AFTER_SECONDS
    count = (
        Task.objects.silent(now)
        .filter(pk__in=silent)
        .update(
            status=TaskStatus.INTERRUPTED,
            ended=now,
            error=f"interrupted: its process stopped sending heartbeats (none for {timeout} s)",
        )
    )
    Task.objects.filter(parent_id__in=silent, status=TaskStatus.PENDING).update(
        status=TaskStatus.INTERRUPTED,
        ended=now,
        error="not started: its parent was interrupted",
    )
    return count


def prune_finished(now=None, *, days: int | None = None) -> int:
    """Delete the task trees whose root ended more than ``days`` ago; return how many rows."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TASK_RETENTION_DAYS if days is None else days)
    roots = Task.objects.roots().finished().filter(ended__lt=cutoff)
    deleted = 0
    # In slices, so a year of tasks does not become one huge transaction.
    while True:
        ids = list(roots.values_list("pk", flat=True)[:500])
        if not ids:
            return deleted
        with transaction.atomic():
            deleted += Task.objects.filter(root_id__in=ids).delete()[0]
            deleted += Task.objects.filter(pk__in=ids).delete()[0]


def request_cancel(task: Task) -> bool:
    """Ask the process running ``task`` to cancel it; it stops at its next progress write.

    A pending task is cancelled at once. Returns False when the task cannot be cancelled.
    """
    if not task.cancellable or task.is_final:
        return False
    now = timezone.now()
    if Task.objects.filter(pk=task.pk, status=TaskStatus.PENDING).update(
        status=TaskStatus.CANCELLED, ended=now, error="cancelled on request before it started"
    ):
        return True
    return bool(
        Task.objects.filter(pk=task.pk, status=TaskStatus.RUNNING).update(cancel_requested=True)
    )


def subtree_ids(task_id: int) -> list[int]:
    """``task_id`` and every task under it (one query per level: trees are a few levels deep)."""
    found, level = [task_id], [task_id]
    while level:
        level = list(Task.objects.filter(parent_id__in=level).values_list("pk", flat=True))
        found += level
    return found


def request_cancel_tree(task_id: int) -> int:
    """Ask the process running a task to stop it and everything under it, whether or not it is
    ``cancellable`` (for the code that owns the work, e.g. a cancelled VM backup).

    Running rows are marked ``cancel_requested``: each raises ``TaskCancelled`` at its next
    progress write, and no new subtask starts under them (``tasks.reporter``). Pending ones are
    cancelled at once. Returns how many rows were marked.
    """
    ids = subtree_ids(task_id)
    now = timezone.now()
    Task.objects.filter(pk__in=ids, status=TaskStatus.PENDING).update(
        status=TaskStatus.CANCELLED, ended=now, error="cancelled on request before it started"
    )
    return Task.objects.filter(pk__in=ids, status=TaskStatus.RUNNING).update(cancel_requested=True)


def end_tree(task_id: int, status: str, message: str) -> int:
    """End a task and everything under it still open as ``status`` (interrupted, cancelled),
    with ``message``: for work whose process is gone, so that nobody will end its rows."""
    ids = subtree_ids(task_id)
    now = timezone.now()
    return Task.objects.filter(pk__in=ids, status__in=TaskStatus.open()).update(
        status=status, ended=now, updated=now, error=message[:10_000]
    )
