"""The task page, its fragment, the detail page, the JSON endpoints and cancel."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks.models import Task, TaskLogEntry

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_page_shows_a_tree_with_progress_and_estimates(client, make_task):
    run = make_task("Backup run nightly", kind="run")
    make_task("vm web", parent=run, total=1000, done=500, seconds_ago=50)  # 10 units/s
    make_task("vm db", parent=run, total=1000, status="pending")
    page = client.get(reverse("tasks:task_list"))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'hx-trigger="every 2s"' in html
    assert "Backup run nightly" in html and "vm web" in html and "vm db" in html
    assert f'data-toggle="{run.pk}"' in html  # the run can be folded
    # The run covers both VMs: 500 of 2000 units, 1500 left at 10/s = 2 min 30 s.
    assert 'value="25.0"' in html
    assert "2 min 30 s" in html
    data = client.get(reverse("tasks:task_list_json")).json()
    (root,) = data["tasks"]
    assert root["name"] == "Backup run nightly" and root["progress"] == 0.25
    assert root["remaining_s"] == pytest.approx(150, abs=3)
    assert [child["name"] for child in root["children"]] == ["vm web", "vm db"]
    assert root["children"][0]["rate_bps"] == pytest.approx(10, rel=0.05)
    assert root["children"][1]["status"] == "pending" and root["children"][1]["eta"] is None


def test_the_htmx_poll_gets_only_the_table(client, make_task):
    make_task("export")
    fragment = client.get(reverse("tasks:task_list"), **HTMX).content.decode()
    assert "<table" in fragment and "export" in fragment
    assert '<nav class="topnav"' not in fragment and "hx-trigger" not in fragment


def test_filters(client, make_task, pool_row):
    pool = pool_row("lab")
    make_task("alive")
    make_task("dead", updated=timezone.now() - timezone.timedelta(hours=1))
    make_task("broken", status="failure", error="remote is full")
    make_task("old", status="success", created=timezone.now() - timezone.timedelta(days=3))
    make_task("on lab", pool=pool)

    def names(**params):
        data = client.get(reverse("tasks:task_list_json"), params).json()
        return {task["name"] for task in data["tasks"]}

    assert names(status="running") == {"alive", "on lab"}
    assert names(status="failed") == {"dead", "broken"}
    assert names(status="recent") == {"alive", "dead", "broken", "on lab"}
    assert names(pool=pool.pk) == {"on lab"}
    dead = client.get(reverse("tasks:task_list_json")).json()["tasks"]
    assert {t["name"]: t["status"] for t in dead}["dead"] == "interrupted"
    bad = client.get(reverse("tasks:task_list"), {"status": "sleepy"})
    assert bad.status_code == 400
    assert "status=&#x27;sleepy&#x27; is not a filter: use one of running, failed, recent" in (
        bad.content.decode()
    )
    assert client.get(reverse("tasks:task_list_json"), {"pool": "x"}).json() == {
        "error": "pool: 'x' is not an id (a whole number from 1 to 9223372036854775807)"
    }


def _bulk_tasks(count: int) -> None:
    now = timezone.now()
    Task.objects.bulk_create(
        Task(name=f"task {i}", status="success", created=now, started=now, ended=now)
        for i in range(count)
    )


@pytest.mark.parametrize(
    ("url_name", "headers"),
    [("tasks:task_list", {}), ("tasks:task_list", HTMX), ("tasks:task_list_json", {})],
)
def test_the_page_query_count_is_the_same_with_10_and_10000_tasks(
    client, make_task, pool_row, make_xapi_task, url_name, headers
):
    pool = pool_row()
    make_xapi_task(pool)
    run = make_task("run")
    make_task("vm", parent=run, total=10, done=5)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse(url_name), **headers)
        assert response.status_code == 200
        return len(captured.captured_queries)

    _bulk_tasks(10)
    with_10 = queries()
    _bulk_tasks(9_990)
    assert Task.objects.count() == 10_002
    assert queries() == with_10


def test_the_detail_page_shows_the_log_and_subtasks(client, make_task):
    vm = make_task("vm web", total=100, done=40, kind="vm")
    make_task("transfer xvda", parent=vm, total=100, done=40)
    TaskLogEntry.objects.create(task=vm, level="warning", message="disk xvdb skipped: [NOBAK]")
    html = client.get(vm.get_absolute_url()).content.decode()
    assert "transfer xvda" in html and "disk xvdb skipped: [NOBAK]" in html
    assert f'hx-get="{vm.get_absolute_url()}"' in html
    data = client.get(reverse("tasks:task_detail_json", args=[vm.pk])).json()
    assert data["log"][0]["message"] == "disk xvdb skipped: [NOBAK]"
    assert data["children"][0]["name"] == "transfer xvda"
    assert client.get(reverse("tasks:task_detail", args=[999999])).status_code == 404


def test_cancel_a_cancellable_task_and_refuse_the_others(client, make_task):
    slow = make_task("slow", cancellable=True)
    merge = make_task("merge")
    response = client.post(reverse("tasks:task_cancel", args=[slow.pk]))
    assert response.status_code == 302 and response.url == slow.get_absolute_url()
    slow.refresh_from_db()
    assert slow.cancel_requested
    response = client.post(reverse("tasks:task_cancel", args=[merge.pk]), follow=True)
    assert (
        "Task merge cannot be cancelled: it is running and its work does not support cancelling."
        in response.content.decode()
    )
    assert not Task.objects.get(pk=merge.pk).cancel_requested
    evil = client.post(
        reverse("tasks:task_cancel", args=[slow.pk]), {"next": "https://evil.example/"}
    )
    assert evil.url == slow.get_absolute_url()


def test_xapi_tasks_are_listed_with_the_same_estimate(client, pool_row, make_xapi_task):
    pool = pool_row("lab")
    export = make_xapi_task(pool, "Export of VM web", progress=0.4, rate=0.01)
    data = client.get(reverse("tasks:task_list_json")).json()
    (xapi,) = data["xapi_tasks"]
    assert xapi["source"] == "lab" and xapi["name"] == "Export of VM web"
    assert xapi["status"] == "running" and xapi["progress"] == 0.4
    assert xapi["remaining_s"] == pytest.approx(60, rel=0.1)  # 0.6 left at 1 %/s
    assert xapi["rate_bps"] is None and xapi["cancellable"]
    html = client.get(reverse("tasks:xapi_task_detail", args=[export.pk])).content.decode()
    assert "Export of VM web" in html and "Cancel this XAPI task" in html


def test_a_cancel_request_shows_from_current_operations_as_xapi_records_it(
    client, pool_row, make_xapi_task
):
    """XAPI never sets the status "cancelling": a request is a "cancel" in current_operations."""
    pool = pool_row("lab")
    make_xapi_task(pool, "Export of VM web", record={"current_operations": {}})
    make_xapi_task(
        pool, "Export of VM db", record={"current_operations": {"OpaqueRef:caller": "cancel"}}
    )
    shown = {x["name"]: x for x in client.get(reverse("tasks:task_list_json")).json()["xapi_tasks"]}
    assert shown["Export of VM db"]["status"] == "running"
    assert "cancel requested" in shown["Export of VM db"]["detail"]
    assert "cancel requested" not in shown["Export of VM web"]["detail"]


def test_a_lost_pools_xapi_tasks_are_not_shown_as_live(client, pool_row, make_xapi_task):
    pool = pool_row("lab", status="stale")
    make_xapi_task(pool, "Export of VM web", stale_since=timezone.now())
    (xapi,) = client.get(reverse("tasks:task_list_json")).json()["xapi_tasks"]
    assert xapi["stale"] and xapi["remaining_s"] is None and not xapi["cancellable"]
    html = client.get(reverse("tasks:task_list")).content.decode()
    assert "pool lab is stale" in html


def test_cancelling_an_xapi_task_goes_through_celery(
    client, pool_row, make_xapi_task, django_capture_on_commit_callbacks
):
    pool = pool_row("lab")
    export = make_xapi_task(pool)
    with (
        mock.patch("pools.tasks.cancel_xapi_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(reverse("tasks:xapi_task_cancel", args=[export.pk]), follow=True)
    delay.assert_called_once_with(export.pk)
    assert "Cancel requested for XAPI task Export of VM web on lab." in response.content.decode()
    done = make_xapi_task(pool, "Import", status="success", allowed_operations=[])
    with mock.patch("pools.tasks.cancel_xapi_task.delay") as delay:
        response = client.post(reverse("tasks:xapi_task_cancel", args=[done.pk]), follow=True)
    delay.assert_not_called()
    assert "XAPI task Import cannot be cancelled" in response.content.decode()


def test_the_detail_of_a_task_in_a_huge_tree_shows_it_and_its_children(
    client, make_task, monkeypatch
):
    monkeypatch.setattr("tasks.views.MAX_TREE_ROWS", 5)
    run = make_task("huge run")
    vms = [make_task(f"vm {i}", parent=run) for i in range(8)]
    make_task("transfer of vm 7", parent=vms[7], total=10, done=5)
    data = client.get(reverse("tasks:task_detail_json", args=[vms[7].pk])).json()
    assert data["name"] == "vm 7"
    assert [child["name"] for child in data["children"]] == ["transfer of vm 7"]


def test_cancelling_a_vanished_xapi_task_says_so():
    from pools.tasks import cancel_xapi_task

    assert cancel_xapi_task(999999) == "XAPI task 999999 is gone: nothing to cancel"


def test_xapi_tasks_seen_by_a_dead_watcher_are_not_shown_as_live(client, pool_row, make_xapi_task):
    from pools.models import WatcherHeartbeat

    make_xapi_task(pool_row("lab"), "Export of VM web")
    WatcherHeartbeat.objects.update(beat_at=timezone.now() - timezone.timedelta(minutes=5))
    (xapi,) = client.get(reverse("tasks:task_list_json")).json()["xapi_tasks"]
    assert xapi["stale"] and xapi["remaining_s"] is None and not xapi["cancellable"]
    html = client.get(reverse("tasks:task_list")).content.decode()
    assert "no pool watcher is running: last known state" in html


def test_the_admin_lists_and_shows_tasks_with_their_log(admin_client, make_task):
    run = make_task("nightly run")
    TaskLogEntry.objects.create(task=run, level="error", message="remote is full")
    listing = admin_client.get(reverse("admin:tasks_task_changelist"))
    assert listing.status_code == 200 and "nightly run" in listing.content.decode()
    detail = admin_client.get(reverse("admin:tasks_task_change", args=[run.pk]))
    assert detail.status_code == 200 and "remote is full" in detail.content.decode()
    log = admin_client.get(reverse("admin:tasks_tasklogentry_changelist"))
    assert "remote is full" in log.content.decode()


def test_tasks_are_read_only_in_the_admin(admin_client, make_task):
    run = make_task("nightly run")
    entry = TaskLogEntry.objects.create(task=run, level="info", message="started")
    assert admin_client.get(reverse("admin:tasks_task_add")).status_code == 403
    assert admin_client.get(reverse("admin:tasks_tasklogentry_add")).status_code == 403
    detail = admin_client.get(reverse("admin:tasks_task_change", args=[run.pk])).content.decode()
    assert "nightly run" in detail and 'name="_save"' not in detail
    assert (
        admin_client.post(
            reverse("admin:tasks_task_change", args=[run.pk]), {"name": "renamed"}
        ).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:tasks_task_delete", args=[run.pk])).status_code == 403
    assert (
        admin_client.get(reverse("admin:tasks_tasklogentry_delete", args=[entry.pk])).status_code
        == 403
    )
    assert Task.objects.get(pk=run.pk).name == "nightly run"


def test_tasks_about_a_pool_name_it_in_the_list_and_the_detail(client, make_task, pool_row):
    """The task list loads each row's pool with it (select_related): without it the pool would
    silently be missing from the JSON, not cost a query."""
    lab, other = pool_row("lab"), pool_row("other")
    run = make_task("backup run", pool=lab)
    make_task("vm web", parent=run, pool=other, total=10, done=5)

    (root,) = client.get(reverse("tasks:task_list_json")).json()["tasks"]
    assert root["pool"] == "lab"
    assert root["children"][0]["pool"] == "other"
    detail = client.get(reverse("tasks:task_detail_json", args=[run.pk])).json()
    assert detail["pool"] == "lab" and detail["children"][0]["pool"] == "other"
