"""The reporter in one process: rows, throttling, failures, sub-tasks, plans, cancel, log."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import reporter
from tasks.choices import LogLevel, TaskStatus
from tasks.models import Task
from tasks.reporter import TaskCancelled, TaskNotStartable, current_task, task
from tasks.services import request_cancel

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(reporter, "_now", clock)
    return clock


def updates_of(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "tasks_task"')]


def test_a_task_runs_and_succeeds_with_its_result(clock):
    with task("export", kind="transfer", total=1000, about="vm1") as transfer:
        row = Task.objects.get(pk=transfer.id)
        assert row.status == TaskStatus.RUNNING and row.started is not None
        assert row.about_label == "vm1" and row.host
        clock.now += 2
        transfer.advance(1000)
        transfer.set_result({"size": 1000})
    row.refresh_from_db()
    assert row.status == TaskStatus.SUCCESS
    assert row.progress == 1.0 and row.done == 1000
    assert row.result == {"size": 1000}
    assert row.ended is not None and row.error == ""
    assert row.history[-1][1] == 1000


def test_writes_are_throttled_to_one_a_second_and_one_per_whole_percent(clock):
    with task("transfer", total=10**12) as transfer:
        with CaptureQueriesContext(connection) as queries:
            for _ in range(5000):  # 5000 blocks in 2.5 s, far below 1 %
                clock.now += 0.0005
                transfer.advance(4096)
        # One write per elapsed second, not one per block.
        assert 2 <= len(updates_of(queries.captured_queries)) <= 3
    with task("small", total=100) as small:
        with CaptureQueriesContext(connection) as queries:
            for _ in range(1000):  # 0.1 unit per call, all in the same second
                small.advance(0.1)
        # Only whole percents trigger a write: 100 % in 1000 blocks → at most 100 writes.
        assert 95 <= len(updates_of(queries.captured_queries)) <= 101


def test_a_failure_keeps_the_message_logs_it_and_lets_the_exception_go_on(clock):
    with (
        pytest.raises(OSError, match="remote /srv/backups is not writable"),
        task("write backup") as failing,
    ):
        raise OSError("remote /srv/backups is not writable: Permission denied")
    row = Task.objects.get(pk=failing.id)
    assert row.status == TaskStatus.FAILURE
    assert row.error == "remote /srv/backups is not writable: Permission denied"
    entry = row.log.get()
    assert entry.level == LogLevel.ERROR and entry.message == row.error


def test_an_exception_without_a_message_is_named(clock):
    with pytest.raises(KeyError), task("lookup") as failing:
        raise KeyError
    assert Task.objects.get(pk=failing.id).error == "KeyError"


def test_subtasks_take_the_current_task_as_parent_and_share_its_root(clock):
    with task("run", kind="run") as run:
        assert current_task() is run
        with task("vm", kind="vm") as vm, vm.subtask("snapshot", kind="snapshot") as snap:
            assert current_task() is snap
        assert current_task() is run
    assert current_task() is None
    vm_row, snap_row = Task.objects.get(pk=vm.id), Task.objects.get(pk=snap.id)
    assert vm_row.parent_id == run.id and vm_row.root_id == run.id
    assert snap_row.parent_id == vm.id and snap_row.root_id == run.id
    assert Task.objects.get(pk=run.id).root_id is None
    assert set(Task.objects.trees([run.id]).values_list("pk", flat=True)) == {
        run.id,
        vm.id,
        snap.id,
    }


def test_a_planned_task_starts_once_and_leftovers_are_cancelled(clock):
    with task("run") as run:
        first = run.plan("vm a", kind="vm", total=100)
        second = run.plan("vm b", kind="vm", total=300)
        assert first.status == TaskStatus.PENDING and first.root_id == run.id
        with task(first.id) as vm:
            vm.advance(100)
        with pytest.raises(TaskNotStartable, match=r"is already success: a task is started only"):
            task(first.id).start()
    left = Task.objects.get(pk=second.pk)
    assert left.status == TaskStatus.CANCELLED
    assert left.error == "not started: run ended (success)"
    with pytest.raises(TaskNotStartable, match="task 999999 does not exist"):
        task(999999).start()


def test_a_cancel_request_stops_the_work_at_its_next_write(clock):
    with pytest.raises(TaskCancelled), task("slow", total=100, cancellable=True) as slow:
        slow.advance(1)
        assert request_cancel(Task.objects.get(pk=slow.id))
        for _ in range(99):
            slow.advance(1)
    row = Task.objects.get(pk=slow.id)
    assert row.status == TaskStatus.CANCELLED
    assert row.error == "slow: cancelled on request"
    assert row.done == 2  # the block that found the request, and none after


def test_a_task_not_made_cancellable_refuses_a_cancel(clock):
    with task("merge") as merge:
        assert not request_cancel(Task.objects.get(pk=merge.id))
    assert Task.objects.get(pk=merge.id).status == TaskStatus.SUCCESS


def test_set_progress_records_a_ratio(clock):
    with task("import") as work:
        clock.now += 1
        work.set_progress(0.25)
        row = Task.objects.get(pk=work.id)
        assert row.unit == "ratio" and row.progress == 0.25 and row.total == 1.0


def test_the_log_is_bounded(clock, monkeypatch):
    monkeypatch.setattr(reporter, "LOG_MAX_ENTRIES", 5)
    with task("chatty") as chatty:
        for index in range(20):
            chatty.warning(f"disk {index} skipped")
    messages = list(Task.objects.get(pk=chatty.id).log.values_list("message", flat=True))
    assert messages[:5] == [f"disk {index} skipped" for index in range(5)]
    assert messages[5:] == ["log full: messages after 5 dropped"]


def test_about_a_model_links_it_and_records_its_pool(clock):
    from pools.models import Pool

    pool = Pool.objects.create(name="lab", master_url="https://10.0.0.1")
    with task("scan", about=pool) as scan:
        pass
    row = Task.objects.get(pk=scan.id)
    assert row.about_label == "lab" and row.pool_id == pool.pk


def test_a_task_declared_interrupted_while_it_runs_stops_and_its_parent_says_why(clock):
    with pytest.raises(reporter.TaskInterrupted), task("run") as run:  # noqa: SIM117
        with task("transfer", total=100) as transfer:
            Task.objects.filter(pk=transfer.id).update(status=TaskStatus.INTERRUPTED)
            clock.now += 2
            transfer.advance(1)
    message = (
        f"task {transfer.id} (transfer) was marked interrupted while this process ran it "
        "(no heartbeat for 60 s): stopping"
    )
    for pk in (transfer.id, run.id):
        row = Task.objects.get(pk=pk)
        assert row.status == TaskStatus.INTERRUPTED and row.error == message
