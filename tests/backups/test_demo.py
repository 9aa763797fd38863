"""The demo backs up by itself: created once the demo pool is live, ordinary data the person
may delete (never created again), and its VMs write into their disks so deltas carry data."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_demo_is_created_once_and_its_guests_write(
    xapisim_factory, make_pool, start_watcher, wait_for, settings, tmp_path
):
    from backups.models import BackupJob, Remote
    from backups.services import demo
    from pools.models import VDI, VM

    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    sim = xapisim_factory(vms=5, disk_size="16M")
    pool = make_pool(sim, name="demo")
    assert demo.create_once(pool) is None, "nothing before the watcher has the VMs live"
    start_watcher()
    wait_for(lambda: VM.objects.guests().live().count() == 5, timeout=30, message="no VMs")

    created = demo.create_once(pool)
    job = created.job
    assert (job.name, job.mode, created.remote.path) == (
        "demo",
        "delta",
        str(settings.VAR_DIR / "demo-backups"),
    )
    names = sorted(VM.objects.filter(uuid__in=job.vm_uuids).values_list("name_label", flat=True))
    assert names == ["vm-00000", "vm-00001", "vm-00003"], "the first three running VMs"
    schedules = {s.name: (s.cron, s.retention, s.force_full) for s in job.schedules.all()}
    assert schedules == {
        "every 2 minutes": ("*/2 * * * *", 4, False),
        "full every 10 minutes": ("5-59/10 * * * *", 2, True),
    }
    assert created.remote.status == "ok", "write-tested like every remote"

    session = sim.session()
    disks = demo.demo_disks(pool)
    assert len(disks) == 3 + 1 + 2  # [NOBAK] disks too: the guests write where they like
    before = {ref: sim.sim("vdi_sha256", ref) for ref in disks}
    assert demo.write_into_disks(pool) == len(disks)
    after = {ref: sim.sim("vdi_sha256", ref) for ref in disks}
    assert all(before[ref] != after[ref] for ref in disks)
    assert VDI.objects.filter(ref__in=disks).count() == len(disks)
    assert session  # the simulator still answers

    # Killed after the job's commit, before the marker: the next start only writes the marker.
    marker = demo.marker().read_text()
    demo.marker().unlink()
    assert demo.create_once(pool) is None
    assert BackupJob.objects.count() == 1 and demo.marker().read_text() == marker

    # Ordinary data: deleted by the person, it stays deleted at the next start.
    job.delete()
    Remote.objects.all().delete()
    assert demo.create_once(pool) is None
    assert not BackupJob.objects.exists()
