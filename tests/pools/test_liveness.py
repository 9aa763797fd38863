"""The liveness rule (pools/liveness.py) and its one home.

One table of (pool status, loss time, watcher heartbeat) → live / stale / unknown drives every
test here: the rule itself with an injected clock, its SQL form, and each page, endpoint and
command that shows a pool or its objects. A last test fails when a template or a view decides
liveness by itself instead of asking the rule.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from pools import liveness
from pools.choices import PoolStatus
from pools.liveness import Liveness, Watch
from pools.models import VM, Host, Pool, WatcherHeartbeat, XapiTask

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
TIMEOUT = 15  # POOL_WATCHER_HEARTBEAT_TIMEOUT in these tests

#: (pool status, lost: stale_since set, heartbeat age in seconds or None for no watcher row)
#: → the rule's answer.
CASES = [
    (PoolStatus.CONNECTED, False, 0, Liveness.LIVE),
    (PoolStatus.CONNECTED, False, TIMEOUT, Liveness.LIVE),  # the last beat still counts
    (PoolStatus.CONNECTED, False, TIMEOUT + 1, Liveness.UNKNOWN),  # the watcher died
    (PoolStatus.CONNECTED, False, None, Liveness.UNKNOWN),  # no watcher ever ran
    (PoolStatus.STALE, True, 0, Liveness.STALE),
    (PoolStatus.STALE, True, 600, Liveness.STALE),  # a loss stays known, watcher or not
    (PoolStatus.ERROR, True, 0, Liveness.STALE),  # refused after it had connected
    (PoolStatus.ERROR, False, 0, Liveness.UNKNOWN),  # never connected: nothing to grey
    (PoolStatus.CONNECTING, False, 0, Liveness.UNKNOWN),
    (PoolStatus.DISCONNECTED, False, 0, Liveness.UNKNOWN),  # purged
    (PoolStatus.DISABLED, True, 0, Liveness.STALE),
    (PoolStatus.DISABLED, False, 0, Liveness.UNKNOWN),
]
IDS = [f"{status}-{'lost' if lost else 'kept'}-{age}" for status, lost, age, _ in CASES]


@pytest.fixture(autouse=True)
def heartbeat_timeout(settings):
    settings.POOL_WATCHER_HEARTBEAT_TIMEOUT = TIMEOUT
    settings.POOL_STALE_GRACE_SECONDS = 90


class Beat:
    """A heartbeat row as the rule reads it (no database)."""

    def __init__(self, beat_at: datetime) -> None:
        self.beat_at = beat_at


def beat_at(age: int | None, now: datetime) -> Beat | None:
    return None if age is None else Beat(now - timedelta(seconds=age))


# --- the rule, with an injected clock -----------------------------------------------------------


@pytest.mark.parametrize(("status", "lost", "age", "expected"), CASES, ids=IDS)
def test_the_rule(status, lost, age, expected):
    watch = Watch(beat_at(age, NOW), NOW)
    stale_since = NOW - timedelta(seconds=30) if lost else None
    assert liveness.liveness(
        status=status, stale_since=stale_since, watcher_alive=watch.watcher_alive
    ) == (expected)
    pool = Pool(name="lab", status=status, stale_since=stale_since, status_message="")
    verdict = watch.pool(pool)
    assert verdict.liveness == expected
    if expected == Liveness.STALE:
        # "stale since" always has a time, and the purge time follows the grace period.
        assert verdict.since == stale_since
        assert verdict.purge_at == stale_since + timedelta(seconds=90)
        assert f"since {timezone.localtime(stale_since):%H:%M:%S}" in verdict.reason
    else:
        assert verdict.since is None and verdict.purge_at is None
    if expected == Liveness.UNKNOWN and status == PoolStatus.ERROR:
        assert verdict.label == "error"  # a pool that never connected is not "stale"


def test_an_object_lost_with_its_pool_is_stale_even_if_the_pool_row_says_connected():
    watch = Watch(Beat(NOW), NOW)
    pool = Pool(name="lab", status=PoolStatus.CONNECTED, status_message="")
    vm = VM(pool=pool, stale_since=NOW)
    assert watch.object(vm, pool).liveness == Liveness.STALE
    assert watch.object(VM(pool=pool), pool).liveness == Liveness.LIVE


def test_the_reasons_say_why_not_live():
    watch = Watch(None, NOW)
    pool = Pool(name="lab", status=PoolStatus.CONNECTED, status_message="")
    assert watch.pool(pool).reason == "no pool watcher is running: last known state of pool lab"
    alive = Watch(Beat(NOW), NOW)
    refused = Pool(name="lab", status=PoolStatus.ERROR, status_message="XAPI refused the password")
    assert alive.pool(refused).reason == "pool lab is in error: XAPI refused the password"


# --- the same rule in SQL and on every page -----------------------------------------------------


def make_case(status: str, lost: bool, age: int | None, now: datetime) -> Pool:
    """A pool in this state with one guest VM, one host and one running XAPI task, and the
    watcher's heartbeat ``age`` seconds old (none at all for None)."""
    WatcherHeartbeat.objects.all().delete()
    if age is not None:
        WatcherHeartbeat.objects.create(
            name="watch_pools",
            hostname="test",
            pid=1,
            started_at=now - timedelta(hours=1),
            beat_at=now - timedelta(seconds=age),
        )
    stale_since = now - timedelta(seconds=30) if lost else None
    pool = Pool.objects.create(
        name=f"pool-{status}",
        master_url="https://10.0.0.1",
        status=status,
        stale_since=stale_since,
        connected_at=None if status in (PoolStatus.CONNECTING, PoolStatus.ERROR) else now,
    )
    VM.objects.create(
        pool=pool, ref="OpaqueRef:vm", uuid="vm-uuid", name_label="guest", stale_since=stale_since
    )
    Host.objects.create(
        pool=pool, ref="OpaqueRef:host", name_label="host1", stale_since=stale_since
    )
    XapiTask.objects.create(
        pool=pool,
        ref="OpaqueRef:task",
        name_label="VM.snapshot",
        status="pending",
        created=now,
        allowed_operations=["cancel"],
        stale_since=stale_since,
    )
    return pool


def liveness_attributes(html: str) -> set[str]:
    return set(re.findall(r'data-liveness="(\w+)"', html))


@pytest.mark.django_db
@pytest.mark.parametrize(("status", "lost", "age", "expected"), CASES, ids=IDS)
def test_sql_pages_endpoints_and_commands_show_what_the_rule_says(
    client, status, lost, age, expected
):
    now = timezone.now()
    # Pages read the real clock: keep clear of the timeout's edge by a second either way.
    age = None if age is None else (0 if age <= TIMEOUT else TIMEOUT + 60)
    pool = make_case(status, lost, age, now)
    live = expected == Liveness.LIVE

    assert Pool.objects.live(now).filter(pk=pool.pk).exists() is live
    assert VM.objects.guests().live(now).exists() is live
    assert VM.objects.not_live(now).exists() is not live
    assert VM.objects.stale().exists() is (expected == Liveness.STALE)

    for url in ["/", "/pools/", "/vms/", f"/pools/{pool.pk}/"]:
        shown = liveness_attributes(client.get(url).content.decode())
        assert shown == {expected}, f"{url} shows {shown}"

    (xapi,) = client.get("/tasks/api/").json()["xapi_tasks"]
    assert xapi["liveness"] == expected and xapi["stale"] is not live
    assert xapi["cancellable"] is live

    out = StringIO()
    call_command("pool_list", "--json", stdout=out)
    (row,) = json.loads(out.getvalue())
    assert row["liveness"] == expected
    assert (row["purge_at"] is not None) is (expected == Liveness.STALE)


# --- one home: nobody else decides -----------------------------------------------------------------

#: Modules allowed to read pool statuses, loss times and heartbeats: the rule itself, the models
#: of pools and of cached objects (whose querysets call it) and the watcher and cache, which
#: write them.
RULE_HOMES = {
    "pools/liveness.py",
    "pools/models/pool.py",
    "pools/models/cached_object.py",
    "pools/cache.py",
    "pools/watcher.py",
    "pools/choices.py",
}
PYTHON_DECISIONS = [
    r"PoolStatus\.(CONNECTED|STALE|CONNECTING|DISCONNECTED|ERROR|DISABLED)",
    r"""['"](connected|stale|disconnected|connecting)['"]\s*(==|!=|in\b)""",
    r"""(==|!=)\s*['"](connected|stale|disconnected|connecting)['"]""",
    r"\.is_live\b",
    r"stale_since\s+is\b",
    r"stale_since__isnull",
    r"beat_at\s*[<>]|beat_at__[gl]t",
    r"settings\.POOL_WATCHER_HEARTBEAT_TIMEOUT",
    r"WatcherHeartbeat\.objects",
]
TEMPLATE_DECISIONS = [
    r"""['"](connected|stale|disconnected|connecting)['"]""",
    r"{%\s*(el)?if\b[^%]*(pool\.status\b|stale_since|is_stale|beat_at|is_alive)",
]


def sources() -> list[Path]:
    found = []
    for folder in ["pools", "tasks", "backups", "xoweb"]:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/migrations/" in relative or relative in RULE_HOMES:
                continue
            found.append(path)
    return found


def offences(paths: list[Path], patterns: list[str]) -> list[str]:
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for pattern in patterns:
                if re.search(pattern, line):
                    found.append(f"{path.name}:{number}: {line.strip()}")
    return found


def test_no_template_decides_liveness_by_itself():
    templates = sorted((ROOT / "templates").rglob("*.html"))
    assert len(templates) > 10
    assert offences(templates, TEMPLATE_DECISIONS) == [], (
        "templates show pools.liveness's verdict ({% with state=row|verdict:watch %}), "
        "they never compare a status or read a loss time or heartbeat themselves"
    )


def test_no_view_presenter_or_command_decides_liveness_by_itself():
    paths = sources()
    assert any(path.name == "views.py" for path in paths)
    assert offences(paths, PYTHON_DECISIONS) == [], (
        "ask pools.liveness (current_watch().pool(pool), .live() querysets) instead"
    )


def test_the_checks_above_would_catch_a_home_made_rule(tmp_path):
    view = tmp_path / "views.py"
    view.write_text("shown_stale = vm.pool.status != PoolStatus.CONNECTED\n")
    template = tmp_path / "page.html"
    template.write_text("<tr class=\"{% if pool.status != 'connected' %}stale{% endif %}\">\n")
    assert offences([view], PYTHON_DECISIONS)
    assert offences([template], TEMPLATE_DECISIONS)
