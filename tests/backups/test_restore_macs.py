"""A whole VM restored beside its original gets MAC addresses of its own: the wizard offers it
(ticked while the original exists), the command takes ``--new-macs``, and a disk restore, which
makes no network interface, refuses it by name. The engine side (the pool derives the MACs) is
tests/engine/test_restore.py; here the choice is carried from the pages to the recorded
restore."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from backups.models import Restore, RestorePoint
from pools.models import SR, VM

pytestmark = pytest.mark.django_db

PERMS = ("backups.view_restorepoint", "backups.restore_restorepoint")


@pytest.fixture
def point(live_pool, make_remote) -> RestorePoint:
    pool = live_pool("lab", vms=1)
    SR.objects.create(
        pool=pool,
        ref=f"OpaqueRef:{uuid.uuid4()}",
        uuid=str(uuid.uuid4()),
        name_label="Shared storage",
        content_type="user",
    )
    vm = VM.objects.get(pool=pool)
    return RestorePoint.objects.create(
        remote=make_remote("nas"),
        path=f"xo-vm-backups/{vm.uuid}/20260101T000000Z.json",
        vm_uuid=vm.uuid,
        vm_name=vm.name_label,
        timestamp="20260101T000000Z",
        taken_at=datetime(2026, 1, 1, tzinfo=UTC),
        disks=[
            {"vdi": "d0", "name": "system", "file": "f.vhd", "differencing": False, "size": 1 << 22}
        ],
    )


def new_macs_box(page: str) -> str:
    start = page.index('name="new_macs"')
    return page[page.rindex("<input", 0, start) : page.index(">", start)]


def test_the_wizard_ticks_new_macs_while_the_original_exists_and_records_the_choice(
    client_with, point
) -> None:
    client = client_with(*PERMS)
    sr = SR.objects.get()
    url = reverse("backups:restore_wizard", args=[point.vm_uuid])
    page = client.get(url, {"point": point.pk, "what": "vm"}).content.decode()
    assert "checked" in new_macs_box(page), "the original still runs: new MACs by default"
    assert "the original VM still exists" in page

    sent = {"point": point.pk, "what": "vm", "sr": sr.uuid}
    page = client.get(url, sent).content.decode()  # the box was unticked, then sent
    assert "checked" not in new_macs_box(page)
    assert "with the backup's MAC addresses" in page
    page = client.get(url, {**sent, "new_macs": "1"}).content.decode()
    assert 'name="new_macs" value="1"' in page and "with new MAC addresses" in page

    confirm = reverse("backups:restore_wizard_confirm", args=[point.vm_uuid])
    client.post(confirm, {**sent, "new_macs": "1"})
    client.post(confirm, {**sent, "new_macs": "0"})
    client.post(confirm, {"point": point.pk, "what": "disk-sr", "disk": "d0", "sr": sr.uuid})
    assert list(Restore.objects.order_by("pk").values_list("kind", "new_macs")) == [
        ("vm", True),
        ("vm", False),
        ("disk-sr", False),
    ]
    detail = client.get(Restore.objects.filter(new_macs=True).get().get_absolute_url())
    assert "The whole VM, as a new VM, with new MAC addresses" in detail.content.decode()


def test_the_wizard_keeps_the_backups_macs_by_default_once_the_original_is_gone(
    client_with, point
) -> None:
    VM.objects.filter(uuid=point.vm_uuid).delete()
    url = reverse("backups:restore_wizard", args=[point.vm_uuid])
    page = client_with(*PERMS).get(url, {"point": point.pk, "what": "vm"}).content.decode()
    assert "checked" not in new_macs_box(page)
    assert "for a VM that replaces its lost original" in page


def test_the_command_takes_new_macs_for_a_vm_and_refuses_it_for_a_disk(point) -> None:
    sr = SR.objects.get()
    call_command(
        "backup_restore", str(point.pk), "--vm", "--sr", sr.uuid, "--new-macs", "--no-wait"
    )
    assert Restore.objects.get().new_macs is True
    with pytest.raises(CommandError) as refused:
        call_command("backup_restore", str(point.pk), "--disk", "d0", "--sr", sr.uuid, "--new-macs")
    assert str(refused.value) == (
        "not restored: --new-macs: only a whole VM is restored with network interfaces"
    )
    assert Restore.objects.count() == 1, "nothing recorded for the refused one"
