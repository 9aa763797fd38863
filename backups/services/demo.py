"""The demo backs up by itself: on `make run`'s first start, a remote under ``var/``, and a
delta job over a few VMs of the demo pool with two schedules — deltas every two minutes, a
forced full every ten — so that runs, deltas, a forced full, retention and a merge all happen
in the first ten minutes. Meanwhile the demo "guests" write into their disks, so that the
deltas carry data.

Everything it creates is ordinary data: the person may change it or delete it, and it is never
created again (a marker file under ``var/`` says it was done; delete it to get the demo back).
The ``demo`` process of the Procfile (``manage.py demo_activity``) does both: it waits until
the watcher has the demo pool live, creates the demo once, then writes into the VMs' disks
every ``XOWEB_DEMO_WRITE_SECONDS``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from backups.choices import JobMode
from backups.forms import RemoteForm
from backups.models import BackupJob, Remote, Schedule
from pools.models import VBD, VDI, VM, Pool
from pools.services import client_for

logger = logging.getLogger(__name__)

DEMO_POOL = "demo"
NAME = "demo"
#: The demo VMs: the first running VMs of the simulated pool (vm-00000 has a [NOBAK] disk).
VM_COUNT = 3
#: Deltas every two minutes (even minutes), a forced full at :05, :15… (never the same minute).
DELTA_CRON, FULL_CRON = "*/2 * * * *", "5-59/10 * * * *"
#: Four deltas kept: the fifth run of the schedule drops the oldest, and its chain is merged.
DELTA_RETENTION, FULL_RETENTION = 4, 2
#: Blocks written into each demo disk at each write (2 MiB blocks, partly written).
WRITE_BLOCKS = 2


def marker() -> Path:
    return Path(settings.VAR_DIR) / "demo-backups.json"


@dataclass(frozen=True)
class Created:
    remote: Remote
    job: BackupJob


def demo_pool() -> Pool | None:
    return Pool.objects.filter(name=DEMO_POOL).first()


def demo_vms(pool: Pool) -> list[VM]:
    """The first running guests of the demo pool, once the watcher has them live."""
    return list(
        VM.objects.guests()
        .live()
        .filter(pool=pool, power_state="Running")
        .order_by("name_label")[:VM_COUNT]
    )


def create_once(pool: Pool) -> Created | None:
    """Create the demo remote, job and schedules unless it was ever done (the marker file);
    None when done before, or when the pool's VMs are not live yet (try again later).

    Steps: choose the VMs; add the remote through the remote form (the write test every
    remote gets); add the job and its two schedules (their beat entries follow); write the
    marker last, so that a crash before the job's commit makes it try again, not skip it — and
    one between the commit and the marker finds the job next time and only writes the marker.
    """
    if marker().exists():
        return None
    folder = Path(settings.VAR_DIR) / "demo-backups"
    made = BackupJob.objects.filter(remotes__path=str(folder)).order_by("pk").first()
    if made is not None:
        _write_marker(made.remotes.get(path=str(folder)), made, made.vm_uuids)
        return None
    vms = demo_vms(pool)
    if len(vms) < VM_COUNT:
        return None
    form = RemoteForm(
        data={"name": NAME, "path": str(folder), "enabled": True, "test_folder": True}
    )
    existing = Remote.objects.filter(path=str(folder)).first()
    with transaction.atomic():
        if existing is not None:
            remote = existing
        elif form.is_valid():
            remote = form.save()
        else:
            raise RuntimeError(f"the demo remote was not added: {form.errors.as_text()}")
        job = BackupJob.objects.create(
            name=_free_name(),
            mode=JobMode.DELTA,
            vm_uuids=[vm.uuid for vm in vms],
            concurrency=2,
        )
        job.remotes.set([remote])
        for name, cron, retention, force_full in (
            ("every 2 minutes", DELTA_CRON, DELTA_RETENTION, False),
            ("full every 10 minutes", FULL_CRON, FULL_RETENTION, True),
        ):
            schedule = Schedule(
                job=job,
                name=name,
                cron=cron,
                timezone=settings.TIME_ZONE,
                retention=retention,
                force_full=force_full,
            )
            schedule.full_clean()
            schedule.save()
    _write_marker(remote, job, [vm.uuid for vm in vms])
    logger.info("demo: job %s backs up %s to %s", job.name, ", ".join(map(str, vms)), folder)
    return Created(remote, job)


def _write_marker(remote: Remote, job: BackupJob, vm_uuids: list[str]) -> None:
    marker().write_text(json.dumps({"remote": remote.pk, "job": job.pk, "vms": vm_uuids}))


def _free_name() -> str:
    name, number = NAME, 1
    while BackupJob.objects.filter(name__iexact=name).exists():
        number += 1
        name = f"{NAME} {number}"
    return name


def demo_disks(pool: Pool) -> list[str]:
    """Refs of the disks of the demo VMs (those the marker names), [NOBAK] ones included."""
    if not marker().exists():
        return []
    wanted = json.loads(marker().read_text()).get("vms", [])
    vm_refs = VM.objects.filter(pool=pool, uuid__in=wanted).values_list("ref", flat=True)
    vdi_refs = VBD.objects.filter(pool=pool, vm_ref__in=list(vm_refs), type="Disk").exclude(
        vdi_ref=""
    )
    return list(
        VDI.objects.filter(
            pool=pool, ref__in=list(vdi_refs.values_list("vdi_ref", flat=True)), managed=True
        ).values_list("ref", flat=True)
    )


def write_into_disks(pool: Pool) -> int:
    """The demo guests at work: random bytes into a few blocks of each demo disk, through the
    simulator's ``sim.vdi_write_random``; returns how many disks were written."""
    disks = demo_disks(pool)
    if not disks:
        return 0
    with client_for(pool, timeout=10) as client:
        for ref in disks:
            client.call("sim.vdi_write_random", ref, WRITE_BLOCKS)
    return len(disks)
