"""The pools pages: what they show, stale objects greyed, and a flat query count.

Rows are written straight into the cache here: these tests are about the pages, not about how
the watcher fills the cache (test_watcher.py does that against the simulator).
"""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from pools.choices import PoolStatus
from pools.models import VBD, VDI, VM, Pool, WatcherHeartbeat

pytestmark = pytest.mark.django_db

#: A logged-in request reads the session, the user, and the user's and groups' permissions.
LOGIN_QUERIES = 4


def make_pool(name: str = "lab", status: str = PoolStatus.CONNECTED) -> Pool:
    pool = Pool(name=name, master_url=f"https://{name}.example", status=status)
    pool.set_password("pw")
    pool.save()
    return pool


def make_vms(pool: Pool, count: int, *, disks: int = 2, stale: bool = False) -> None:
    stale_since = timezone.now() if stale else None
    vms, vbds, vdis = [], [], []
    for n in range(count):
        vm_ref = f"OpaqueRef:{uuid.uuid4()}"
        vms.append(
            VM(
                pool=pool,
                ref=vm_ref,
                uuid=str(uuid.uuid4()),
                name_label=f"vm-{pool.name}-{n:05d}",
                power_state="Running" if n % 2 else "Halted",
                stale_since=stale_since,
            )
        )
        for d in range(disks):
            vdi_ref = f"OpaqueRef:{uuid.uuid4()}"
            vdis.append(
                VDI(pool=pool, ref=vdi_ref, name_label=f"disk {n}.{d}", virtual_size=1 << 30)
            )
            vbds.append(
                VBD(
                    pool=pool,
                    ref=f"OpaqueRef:{uuid.uuid4()}",
                    vm_ref=vm_ref,
                    vdi_ref=vdi_ref,
                    type="Disk",
                    userdevice=str(d),
                )
            )
    VM.objects.bulk_create(vms)
    VDI.objects.bulk_create(vdis)
    VBD.objects.bulk_create(vbds)


@pytest.fixture
def watcher_alive(db):
    now = timezone.now()
    return WatcherHeartbeat.objects.create(
        name="watch_pools", hostname="test", pid=1, started_at=now, beat_at=now
    )


def test_vm_list_query_count_does_not_grow(client, watcher_alive, django_assert_max_num_queries):
    pool = make_pool()
    make_vms(pool, 10)
    # The page's own queries, plus LOGIN_QUERIES to read the session, the user and its permissions.
    with django_assert_max_num_queries(8 + LOGIN_QUERIES) as few:
        assert client.get("/vms/").status_code == 200
    make_vms(make_pool("other"), 120)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/vms/?sort=pool&page=2").content.decode()
    assert page.count('class="vm live"') == 50
    assert "disk" in page and "1.0\xa0GB" in page


def test_pool_list_query_count_does_not_grow(client, watcher_alive, django_assert_max_num_queries):
    make_vms(make_pool("a"), 3)
    with django_assert_max_num_queries(6 + LOGIN_QUERIES) as few:
        client.get("/pools/")
    for n in range(10):
        make_vms(make_pool(f"p{n}"), 5)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/pools/").content.decode()
    assert page.count("<tr class") == 11


def test_vm_list_searches_sorts_and_filters(client, watcher_alive):
    pool = make_pool()
    make_vms(pool, 30)
    VM.objects.create(
        pool=pool,
        ref="OpaqueRef:snap",
        name_label="vm-lab-snap",
        is_a_snapshot=True,
        is_a_template=True,
    )
    page = client.get("/vms/?q=00017").content.decode()
    assert "vm-lab-00017" in page and "vm-lab-00016" not in page
    page = client.get("/vms/?sort=-name").content.decode()
    assert page.index("vm-lab-00029") < page.index("vm-lab-00028")
    assert "vm-lab-snap" not in page
    page = client.get("/vms/?kind=snapshots").content.decode()
    assert "vm-lab-snap" in page and "vm-lab-00001" not in page
    other = make_pool("other")
    make_vms(other, 2)
    page = client.get(f"/vms/?pool={other.pk}").content.decode()
    assert "vm-other-00001" in page and "vm-lab-00001" not in page


def test_stale_and_disconnected_objects_are_never_shown_live(client, watcher_alive):
    live = make_pool("live")
    make_vms(live, 2)
    stale = make_pool("gone", status=PoolStatus.STALE)
    make_vms(stale, 3, stale=True)
    Pool.objects.filter(pk=stale.pk).update(stale_since=timezone.now())
    page = client.get("/vms/").content.decode()
    assert page.count('class="vm stale"') == 3
    assert page.count('class="vm live"') == 2
    assert VM.objects.live().count() == 2
    assert VM.objects.stale().count() == 3
    assert VM.objects.not_live().count() == 3


def test_a_dead_watcher_greys_everything(client, db):
    make_vms(make_pool(), 2)
    WatcherHeartbeat.objects.create(
        name="watch_pools",
        hostname="test",
        pid=1,
        started_at=timezone.now() - timezone.timedelta(hours=1),
        beat_at=timezone.now() - timezone.timedelta(minutes=5),
    )
    page = client.get("/vms/").content.decode()
    assert "watcher down" in page
    assert page.count('class="vm unknown"') == 2
    assert VM.objects.live().count() == 0 and VM.objects.not_live().count() == 2
    assert VM.objects.stale().count() == 0  # not lost: nobody watches, so nobody knows
    assert "watcher down" in client.get("/pools/").content.decode()


def test_admin_shows_the_cache_read_only(admin_client):
    pool = make_pool()
    make_vms(pool, 1)
    vm = VM.objects.get()
    assert admin_client.get("/admin/pools/vm/").status_code == 200
    page = admin_client.get(f"/admin/pools/vm/{vm.pk}/change/").content.decode()
    assert "vm-lab-00000" in page and 'name="_save"' not in page
    assert admin_client.get("/admin/pools/vm/add/").status_code == 403


def test_a_stale_pool_says_when_its_objects_will_be_purged(client, watcher_alive, settings):
    settings.POOL_STALE_GRACE_SECONDS = 90
    pool = make_pool("gone", status=PoolStatus.STALE)
    Pool.objects.filter(pk=pool.pk).update(
        stale_since=timezone.now().replace(hour=10, minute=0, second=0, microsecond=0),
        status_message="connection refused by https://gone.example: is XAPI running there?",
    )
    page = client.get(f"/pools/{pool.pk}/").content.decode()
    assert "purged at 10:01:30 unless the pool reconnects first" in page
    assert "connection refused by https://gone.example" in page


def test_the_admin_names_xapi_classes_as_xapi_does(admin_client):
    index = admin_client.get("/admin/").content.decode()
    for name in ["SRs", "VBDs", "VDIs", "VMs", "XAPI tasks", "Task log entries"]:
        assert f">{name}</a>" in index, name
    for wrong in ["Srs", "Vbds", "Vdis", "Vms", "Task log entrys"]:
        assert f">{wrong}</a>" not in index, wrong


def test_the_pool_page_links_hosts_to_their_vms_and_xapi_tasks_to_theirs(client, watcher_alive):
    from pools.models import Host, XapiTask

    pool = make_pool()
    make_vms(pool, 3)
    host = Host.objects.create(pool=pool, ref="OpaqueRef:h1", name_label="xcp-host-1")
    VM.objects.filter(name_label__in=["vm-lab-00000", "vm-lab-00002"]).update(
        resident_on_ref=host.ref
    )
    task = XapiTask.objects.create(pool=pool, ref="OpaqueRef:t1", name_label="VM.snapshot")

    page = client.get(f"/pools/{pool.pk}/").content.decode()
    assert f'<a href="/vms/?host={host.pk}">xcp-host-1</a>' in page
    assert f'<a href="/tasks/xapi/{task.pk}/">VM.snapshot</a>' in page

    vms = client.get(f"/vms/?host={host.pk}").content.decode()
    assert "VMs on host xcp-host-1" in vms
    assert "vm-lab-00000" in vms and "vm-lab-00002" in vms and "vm-lab-00001" not in vms
