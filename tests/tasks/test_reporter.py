"""The reporter in one process: rows, throttling, failures, sub-tasks, plans, cancel, log."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks import reporter
from tasks.choices import LogLevel, TaskStatus
from tasks.heartbeat import Heartbeat, heartbeat
from tasks.models import Task
from tasks.reporter import (
    TaskCancelled,
    TaskInterrupted,
    TaskNotStartable,
    current_task,
    start_planned,
    task,
)
from tasks.rows import moment
from tasks.services import mark_interrupted, request_cancel

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
        with start_planned(first.id) as vm:
            vm.advance(100)
        with pytest.raises(TaskNotStartable, match=r"is already success: a task is started only"):
            start_planned(first).start()
    left = Task.objects.get(pk=second.pk)
    assert left.status == TaskStatus.CANCELLED
    assert left.error == "not started: run ended (success)"
    with pytest.raises(TaskNotStartable, match="task 999999 does not exist"):
        start_planned(999999).start()


def test_task_takes_a_name_and_points_to_start_planned_for_an_id(clock):
    with pytest.raises(TypeError, match=r"start a planned task with start_planned\(task_id\)"):
        task(42)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        task("export", colour="blue")


def test_plan_task_and_subtask_take_the_same_options(clock):
    from pools.models import Pool

    pool = Pool.objects.create(name="lab", master_url="https://10.0.0.1")
    options = {"kind": "vm", "total": 300, "unit": "items", "about": pool, "cancellable": True}
    with task("run") as run:
        planned = run.plan("planned", **options)
        with run.subtask("direct", **options) as direct, task("named", **options) as named:
            pass
    columns = ("kind", "total", "unit", "about_label", "pool_id", "cancellable")
    rows = Task.objects.filter(pk__in=[planned.pk, direct.id, named.id]).values_list(*columns)
    assert set(rows) == {("vm", 300.0, "items", "lab", pool.pk, True)}


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


def test_the_end_never_overwrites_an_interruption_written_by_someone_else(clock, settings):
    """The sweep declared the task dead while its block was blocked; when the block ends
    normally afterwards, the row stays interrupted (a conditional update), with the sweep's
    message, and the children it had planned are not started."""
    settings.TASK_INTERRUPTED_AFTER_SECONDS = 60
    with task("blocked snapshot") as blocked:
        later = blocked.plan("after the snapshot")
        clock.now += 61  # no heartbeat meanwhile (the thread beats in real time, not here)
        Task.objects.filter(pk=blocked.id).update(updated=moment(clock.now - 61))
        assert mark_interrupted(now=moment(clock.now)) == 1
    row = Task.objects.get(pk=blocked.id)
    assert row.status == TaskStatus.INTERRUPTED
    assert row.error == "interrupted: its process stopped sending heartbeats (none for 60 s)"
    assert blocked.status == TaskStatus.INTERRUPTED
    assert Task.objects.get(pk=later.pk).status == TaskStatus.INTERRUPTED


def test_the_end_never_overwrites_a_cancel_written_by_someone_else(clock):
    with pytest.raises(TaskInterrupted), task("merge") as merge:
        Task.objects.filter(pk=merge.id).update(status=TaskStatus.CANCELLED, error="by hand")
        clock.now += 2
        merge.advance(1)
    row = Task.objects.get(pk=merge.id)
    assert row.status == TaskStatus.CANCELLED and row.error == "by hand"


def test_the_heartbeat_touches_running_rows_it_holds_and_never_revives_ended_ones(clock):
    beat_clock = Clock(start=1_900_000_000.0)
    beats = Heartbeat(clock=beat_clock, thread=False)
    with task("alive") as alive, task("ended by the sweep") as ended:
        assert set(heartbeat.held(Task)) >= {alive.id, ended.id}
        for row in (alive, ended):
            beats.hold(Task, row.id, field="updated", status=TaskStatus.RUNNING)
        Task.objects.filter(pk=ended.id).update(status=TaskStatus.INTERRUPTED)
        assert beats.beat() == 1
        assert Task.objects.get(pk=alive.id).updated.timestamp() == beat_clock.now
        assert Task.objects.get(pk=ended.id).updated.timestamp() != beat_clock.now
        beats.release(Task, alive.id)
        assert beats.beat() == 0
    assert alive.id not in heartbeat.held(Task) and ended.id not in heartbeat.held(Task)
