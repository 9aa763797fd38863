"""Sweep, prune, periodic registration, the task_list command, settings and formatting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from tasks import formatting
from tasks.choices import TaskStatus
from tasks.models import Task
from tasks.services import mark_interrupted, prune_finished

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@override_settings(TASK_INTERRUPTED_AFTER_SECONDS=60)
def test_the_sweep_interrupts_silent_tasks_only(make_task):
    now = timezone.now()
    dead = make_task("dead", updated=now - timedelta(seconds=61))
    planned = make_task("planned", status="pending", parent=dead)
    alive = make_task("alive", updated=now - timedelta(seconds=30))
    done = make_task("done", status="success", updated=now - timedelta(days=1))
    assert dead.effective_status() == TaskStatus.INTERRUPTED
    assert alive.effective_status() == TaskStatus.RUNNING
    assert mark_interrupted() == 1
    assert mark_interrupted() == 0  # idempotent
    dead.refresh_from_db()
    assert dead.status == TaskStatus.INTERRUPTED and dead.ended is not None
    assert dead.error == "interrupted: its process stopped sending heartbeats (none for 60 s)"
    planned.refresh_from_db()
    assert planned.status == TaskStatus.INTERRUPTED
    assert planned.error == "not started: its parent was interrupted"
    assert Task.objects.get(pk=alive.pk).status == TaskStatus.RUNNING
    assert Task.objects.get(pk=done.pk).status == TaskStatus.SUCCESS


@override_settings(TASK_RETENTION_DAYS=7)
def test_prune_deletes_whole_finished_trees_older_than_the_retention(make_task):
    old = timezone.now() - timedelta(days=8)
    old_run = make_task("old run", status="success", ended=old)
    make_task("old vm", status="success", parent=old_run, ended=old)
    recent_run = make_task("recent run", status="failure")
    running = make_task("running run", ended=None)
    assert prune_finished() == 2
    assert set(Task.objects.values_list("name", flat=True)) == {"recent run", "running run"}
    assert Task.objects.filter(pk__in=[recent_run.pk, running.pk]).count() == 2


def test_the_periodic_tasks_are_registered_for_beat():
    registered = dict(PeriodicTask.objects.values_list("task", "interval__every"))
    assert registered["tasks.mark_interrupted"] == 30
    assert registered["tasks.prune_finished"] == 1


def test_task_list_json_has_every_field(make_task, pool_row, make_xapi_task):
    run = make_task("run", kind="run")
    make_task("transfer", parent=run, total=1000, done=500, seconds_ago=50)
    make_task("finished", status="success", total=10, done=10)
    make_xapi_task(pool_row("lab"), "Export of VM web")
    out = StringIO()
    call_command("task_list", "--json", stdout=out)
    records = json.loads(out.getvalue())
    by_name = {record["name"]: record for record in records}
    assert set(by_name) == {"run", "transfer", "finished", "Export of VM web"}
    fields = {"id", "source", "name", "status", "progress", "elapsed_s", "remaining_s", "eta"}
    assert fields | {"rate_bps", "parent"} == set(by_name["run"])
    transfer = by_name["transfer"]
    assert transfer["source"] == "xoweb" and transfer["parent"] == run.pk
    assert transfer["progress"] == 0.5 and transfer["remaining_s"] == pytest.approx(50, abs=2)
    assert transfer["rate_bps"] == pytest.approx(10, rel=0.05) and transfer["eta"]
    xapi = by_name["Export of VM web"]
    assert xapi["source"] == "lab" and xapi["rate_bps"] is None
    assert by_name["finished"]["remaining_s"] == 0


def test_task_list_running_and_text(make_task):
    make_task("moving", total=100, done=50)
    make_task("finished", status="success")
    out = StringIO()
    call_command("task_list", "--running", stdout=out)
    text = out.getvalue()
    assert "moving" in text and "finished" not in text
    assert text.splitlines()[0].split()[:4] == ["ID", "SOURCE", "STATUS", "PROGRESS"]
    with pytest.raises(CommandError, match="--limit=0 must be from 1 to 10000"):
        call_command("task_list", "--limit", "0")
    with pytest.raises(CommandError, match="--pool: 'lab' is not an id"):
        call_command("task_list", "--pool", "lab")


def test_settings_refuse_a_timeout_shorter_than_two_heartbeats():
    env = dict(os.environ, TASK_HEARTBEAT_SECONDS="10", TASK_INTERRUPTED_AFTER_SECONDS="15")
    completed = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "xoweb.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert (
        "TASK_INTERRUPTED_AFTER_SECONDS=15 must be at least twice TASK_HEARTBEAT_SECONDS=10"
        in completed.stderr
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.4, "0 s"),
        (45, "45 s"),
        (185, "3 min 05 s"),
        (7440, "2 h 04 min"),
        (266400, "3 d 02 h"),
    ],
)
def test_durations_read_well(seconds, text):
    assert formatting.duration(seconds) == text


def test_rates_read_in_the_tasks_unit():
    assert formatting.rate(10 * 2**20, "bytes") == "10.0 MiB/s"
    assert formatting.rate(0.01, "ratio") == "1 %/s"
    assert formatting.rate(0.0001, "ratio") == "0.6 %/min"
    assert formatting.rate(0.5, "items") == "0.5 items/s"
    assert formatting.rate(None, "bytes") == ""
    assert formatting.size(1536) == "1.50 KiB"
    assert formatting.size(300 * 2**30) == "300 GiB"
    assert formatting.size(512) == "512 B"
