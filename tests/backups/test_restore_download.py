"""A restore "as a download" is a file the worker wrote in the restore folder of its own host.
The restore's page offers it only when this web host has it; otherwise it says on which worker
host the file is (with worker hosts apart from the web host), or that it is gone."""

from __future__ import annotations

import pytest
from django.urls import reverse

from backups.models import Restore

pytestmark = pytest.mark.django_db

PERMS = ("backups.view_restorepoint", "backups.restore_restorepoint")


@pytest.fixture
def restore_file(settings, tmp_path):
    settings.BACKUP_RESTORE_DIR = tmp_path / "restores"
    settings.HOST_NAME = "web-a"
    settings.BACKUP_RESTORE_DIR.mkdir()

    def make(host: str, content: bytes | None) -> Restore:
        path = settings.BACKUP_RESTORE_DIR / f"disk-{host}.raw"
        if content is not None:
            path.write_bytes(content)
        return Restore.objects.create(
            backup_path="xo-vm-backups/v/20260101T000000Z.json",
            vm_uuid="v",
            kind="disk-file",
            vdi_uuid="d0",
            file_path=str(path),
            file_format="raw",
            status="success",
            result={"path": str(path), "size": 3, "sha256": "x", "host": host},
        )

    return make


def test_the_file_of_this_host_is_offered_and_downloaded(client_with, restore_file) -> None:
    client = client_with(*PERMS)
    restore = restore_file("web-a", b"abc")
    page = client.get(restore.get_absolute_url()).content.decode()
    assert 'id="restore-download"' in page and "Not offered" not in page
    response = client.get(reverse("backups:restore_download", args=[restore.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == b"abc"


def test_a_file_written_on_another_worker_host_is_said_to_be_there(
    client_with, restore_file
) -> None:
    client = client_with(*PERMS)
    restore = restore_file("worker-b", None)
    page = client.get(restore.get_absolute_url()).content.decode()
    assert 'id="restore-download"' not in page
    assert (
        "Not offered for download: the file was written on the worker host worker-b, not on "
        f"this web host (web-a): fetch {restore.file_path} there."
    ) in page
    assert client.get(reverse("backups:restore_download", args=[restore.pk])).status_code == 404


def test_a_file_gone_from_this_host_is_said_to_be_gone(client_with, restore_file) -> None:
    restore = restore_file("web-a", None)
    page = client_with(*PERMS).get(restore.get_absolute_url()).content.decode()
    assert f"{restore.file_path} is no longer in the restore folder of this host." in page
