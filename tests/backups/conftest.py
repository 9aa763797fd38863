"""Fixtures of the backups tests: users holding given permissions, cached VMs, jobs."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.utils import timezone


@pytest.fixture
def client_with(db, client) -> Callable[..., object]:
    """``client_with("backups.view_remote", …)``: the test client logged in as a user holding
    exactly these permissions (``"*"``: a superuser)."""
    from django.contrib.auth.models import Permission, User

    def make(*perms: str):
        if perms == ("*",):
            user = User.objects.create_superuser(f"admin-{uuid.uuid4().hex[:6]}", password="x")
        else:
            user = User.objects.create_user(f"user-{uuid.uuid4().hex[:6]}", password="x")
            for perm in perms:
                app, codename = perm.split(".")
                user.user_permissions.add(
                    Permission.objects.get(content_type__app_label=app, codename=codename)
                )
        client.force_login(user)
        return client

    return make


@pytest.fixture
def live_pool(db) -> Callable[..., object]:
    """``live_pool(name, vms=N)``: a connected pool with N guest VMs (two disks each, one
    [NOBAK]) in its cache and a fresh watcher heartbeat, so that the rows are live."""
    from pools.models import VBD, VDI, VM, Pool, WatcherHeartbeat

    def make(name: str = "lab", vms: int = 2, status: str = "connected", tags=()):
        WatcherHeartbeat.objects.update_or_create(
            name="watch_pools",
            defaults={
                "hostname": "test",
                "pid": 1,
                "started_at": timezone.now(),
                "beat_at": timezone.now() + timezone.timedelta(hours=1),
            },
        )
        pool = Pool(name=name, master_url=f"https://{name}.example", status=status)
        pool.set_password("pw")
        pool.save()
        for n in range(vms):
            vm_ref = f"OpaqueRef:{uuid.uuid4()}"
            VM.objects.create(
                pool=pool,
                ref=vm_ref,
                uuid=str(uuid.uuid4()),
                name_label=f"{name}-vm{n}",
                power_state="Running" if n % 2 else "Halted",
                tags=list(tags) if n % 2 == 0 else [],
            )
            for d, label in enumerate(("system", "scratch [NOBAK]")):
                vdi_ref = f"OpaqueRef:{uuid.uuid4()}"
                VDI.objects.create(
                    pool=pool,
                    ref=vdi_ref,
                    uuid=str(uuid.uuid4()),
                    name_label=label,
                    virtual_size=(d + 1) << 20,
                )
                VBD.objects.create(
                    pool=pool,
                    ref=f"OpaqueRef:{uuid.uuid4()}",
                    vm_ref=vm_ref,
                    vdi_ref=vdi_ref,
                    type="Disk",
                    userdevice=str(d),
                )
        return pool

    return make


@pytest.fixture
def make_remote(db, tmp_path) -> Callable[..., object]:
    from backups.models import Remote

    def make(name: str = "nas", **fields):
        fields.setdefault("path", str(tmp_path / f"remote-{name}"))
        return Remote.objects.create(name=name, **fields)

    return make


@pytest.fixture
def make_job(db, make_remote) -> Callable[..., object]:
    from backups.models import BackupJob

    def make(name: str = "nightly", *, vms=(), remotes=None, **fields):
        job = BackupJob.objects.create(
            name=name, vm_uuids=[vm.uuid for vm in vms] or ["00000000-0000-0000-0000-0"], **fields
        )
        job.remotes.set(remotes or [make_remote(f"r-{name}")])
        return job

    return make


@pytest.fixture
def backup_pool(xapisim_factory, make_pool, start_watcher, wait_for) -> Callable[..., tuple]:
    """``backup_pool(vms=N, disk_size="4M")``: a simulated pool cached live by a real watcher;
    returns ``(sim, pool)``."""
    from pools.models import VM

    def make(vms: int = 1, disk_size: str = "4M", **options):
        sim = xapisim_factory(vms=vms, disk_size=disk_size, **options)
        pool = make_pool(sim)
        start_watcher()
        wait_for(
            lambda: VM.objects.guests().live().filter(pool=pool).count() == vms,
            timeout=60,
            message=f"the watcher never cached the simulator's {vms} VM(s)",
        )
        return sim, pool

    return make
