"""Restores: a disk to an SR (a new VDI) or to a file on the worker, or the whole VM as a new
VM. :func:`request` checks what the person asked and records it (nothing is queued on bad
input); :func:`run` does the work in a worker, under its task, once."""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.choices import FileFormat, RestoreKind, RestoreStatus
from backups.models import Restore, RestorePoint
from backups.services import bridge, verification
from pools.models import SR
from pools.services import client_for
from tasks.reporter import no_current_task, task

logger = logging.getLogger(__name__)


class RestoreRefused(ValueError):
    """What was asked cannot be restored; ``field`` names the input to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def live_sr(sr_uuid: str) -> SR:
    """The SR with this uuid in a live pool's cache, able to hold disks, or RestoreRefused."""
    sr = SR.objects.live().select_related("pool").filter(uuid=sr_uuid.strip()).first()
    if sr is None:
        known = SR.objects.filter(uuid=sr_uuid.strip()).select_related("pool").first()
        if known is None:
            raise RestoreRefused("sr", f"no SR with uuid {sr_uuid!r} in any pool's cache")
        raise RestoreRefused(
            "sr",
            f"SR {known.name_label} is in pool {known.pool.name}, which is not connected now",
        )
    if sr.content_type == "iso":
        raise RestoreRefused("sr", f"SR {sr.name_label} holds ISO images, not disks")
    return sr


def restorable_srs():
    """The SRs a restore (or a restore test) may write to: live, holding disks (not ISO)."""
    return (
        SR.objects.live()
        .exclude(content_type="iso")
        .select_related("pool")
        .order_by("pool__name", "name_label")
        .only("uuid", "name_label", "pool__name", "content_type", "type")
    )


def request(
    point: RestorePoint,
    kind: str,
    *,
    vdi_uuid: str = "",
    sr_uuid: str = "",
    file_path: str = "",
    file_format: str = FileFormat.RAW,
    new_macs: bool = False,
    requested_by: str = "",
) -> Restore:
    """Check and record a restore, queued on the workers when the transaction commits."""
    from backups import tasks as celery_tasks

    if kind not in RestoreKind.values:
        raise RestoreRefused("kind", f"unknown restore kind {kind!r}")
    why = verification.refusal(point)
    if why is not None:
        raise RestoreRefused("point", why)
    is_disk = kind in (RestoreKind.DISK_TO_SR, RestoreKind.DISK_TO_FILE)
    if new_macs and is_disk:
        raise RestoreRefused("new_macs", "only a whole VM is restored with network interfaces")
    if is_disk and point.disk(vdi_uuid) is None:
        disks = ", ".join(disk["vdi"] for disk in point.disks) or "none"
        raise RestoreRefused(
            "disk", f"backup {point.timestamp} has no disk {vdi_uuid!r} (it has: {disks})"
        )
    if kind in (RestoreKind.DISK_TO_SR, RestoreKind.VM):
        live_sr(sr_uuid)
    if kind == RestoreKind.DISK_TO_FILE:
        if file_format not in FileFormat.values:
            raise RestoreRefused("format", f"format must be raw or vhd, not {file_format!r}")
        if not file_path:
            name = f"{point.vm_uuid}-{vdi_uuid}-{point.timestamp}.{file_format}"
            file_path = str(Path(settings.BACKUP_RESTORE_DIR) / name)
        path = Path(file_path)
        if not path.is_absolute():
            raise RestoreRefused("to_file", f"{file_path!r} is not an absolute path")
        if path.exists():
            raise RestoreRefused("to_file", f"{file_path} already exists: choose a new name")
    restore = Restore.objects.create(
        point=point,
        remote=point.remote,
        backup_path=point.path,
        vm_uuid=point.vm_uuid,
        vm_name=point.vm_name,
        timestamp=point.timestamp,
        kind=kind,
        vdi_uuid=vdi_uuid if kind != RestoreKind.VM else "",
        sr_uuid=sr_uuid.strip() if kind != RestoreKind.DISK_TO_FILE else "",
        file_path=file_path if kind == RestoreKind.DISK_TO_FILE else "",
        file_format=file_format if kind == RestoreKind.DISK_TO_FILE else "",
        new_macs=new_macs,
        requested_by=requested_by[:150],
    )
    transaction.on_commit(lambda: celery_tasks.restore.delay(restore.pk))
    return restore


def run(restore_id: int) -> str:
    """Do a recorded restore once (the ``restore`` Celery task); returns its final status."""
    now = timezone.now()
    if not Restore.objects.filter(pk=restore_id, status=RestoreStatus.PENDING).update(
        status=RestoreStatus.RUNNING, started=now
    ):
        logger.info("restore %s is not pending: this message changes nothing", restore_id)
        return "not claimed"
    restore = Restore.objects.select_related("remote").get(pk=restore_id)
    status, error, result = RestoreStatus.FAILED, "", {}
    try:
        with no_current_task(), task(_title(restore), kind="restore", about=restore) as progress:
            Restore.objects.filter(pk=restore.pk).update(task_id=progress.id)
            result = _restore(restore, progress)
            checks = _compare(restore, result, progress)
            result["checks"] = [check.as_dict() for check in checks]
            progress.set_result(result)
            different = [check for check in checks if not check.equal]
            if different:
                raise RestoreMismatch(different)
        status = RestoreStatus.SUCCESS
    except Exception as failure:
        logger.exception("restore %s failed", restore.pk)
        error = str(failure) or type(failure).__name__
    finally:
        Restore.objects.filter(pk=restore.pk, status=RestoreStatus.RUNNING).update(
            status=status, error=error, result=result, ended=timezone.now()
        )
    return status


class RestoreMismatch(RuntimeError):
    """A restored disk does not hold the backup's bytes."""

    def __init__(self, checks) -> None:
        super().__init__(
            "; ".join(
                f"the restored disk {check.name or check.vdi_uuid} ({check.restored}) differs "
                f"from the backup: SHA-256 {check.restored_sha256[:16]}… instead of "
                f"{check.backup_sha256[:16]}…"
                for check in checks
            )
        )


def _compare(restore: Restore, result: dict, progress) -> list:
    """Read the backup and the restored disk(s) again and compare their SHA-256, disk by disk
    (backups/engine/restore_check.py): the restore's proof."""
    check = bridge.restore_check()
    remote = bridge.remote_adapter(restore.remote)
    if restore.kind == RestoreKind.VM:
        sources = check.backup_disks_by_position(remote, restore.backup_path)
        sr = live_sr(restore.sr_uuid)
        with client_for(sr.pool) as client:
            restored = check.vm_disks_by_position(client, result["vm"])
            pairs = [(vdi, restored.get(position, "")) for position, vdi in sources.items()]
            return [
                _disk_check(check, remote, restore, vdi, target, client, progress)
                for vdi, target in pairs
            ]
    if restore.kind == RestoreKind.DISK_TO_SR:
        sr = live_sr(restore.sr_uuid)
        with client_for(sr.pool) as client:
            vdi = result["vdi"]
            return [_disk_check(check, remote, restore, restore.vdi_uuid, vdi, client, progress)]
    path = result["path"]
    return [_disk_check(check, remote, restore, restore.vdi_uuid, path, None, progress)]


def _disk_check(check, remote, restore: Restore, vdi_uuid: str, target: str, client, progress):
    """One disk: the backup's SHA-256, then the restored disk's (from the pool, or the file)."""
    backup_sha, name = check.backup_sha256(remote, restore.backup_path, vdi_uuid, progress)
    if not target:
        restored_sha = "(no such disk in the restored VM)"
    elif client is None:
        restored_sha = check.file_sha256(target, restore.file_format, progress)
    else:
        restored_sha = check.vdi_sha256(client, target, progress)
    return check.DiskCheck(vdi_uuid, name, backup_sha, restored_sha, target)


def not_downloadable(restore: Restore) -> str | None:
    """Why this web process cannot offer the restore's file for download, or None if it can.

    The worker writes the file into ``BACKUP_RESTORE_DIR`` of its own host; with worker hosts
    apart from the web host, the file is over there (its host is in the result)."""
    if restore.kind != RestoreKind.DISK_TO_FILE or restore.status != RestoreStatus.SUCCESS:
        return f"restore {restore.pk} is {restore.status}: there is nothing to download"
    folder = Path(settings.BACKUP_RESTORE_DIR).resolve()
    path = Path(restore.file_path).resolve()
    if folder not in path.parents:
        return f"{restore.file_path} is not in the restore folder: fetch it on the worker"
    if path.is_file():
        return None
    host = restore.result.get("host", "")
    if host and host != settings.HOST_NAME:
        return (
            f"the file was written on the worker host {host}, not on this web host "
            f"({settings.HOST_NAME}): fetch {restore.file_path} there"
        )
    return f"{restore.file_path} is no longer in the restore folder of this host"


def _title(restore: Restore) -> str:
    what = {
        RestoreKind.DISK_TO_SR: f"disk {restore.vdi_uuid[:8]} to an SR",
        RestoreKind.DISK_TO_FILE: f"disk {restore.vdi_uuid[:8]} to {restore.file_path}",
        RestoreKind.VM: "the whole VM",
    }[restore.kind]
    return f"Restore {what} from {restore.vm_name or restore.vm_uuid} @ {restore.timestamp}"


def _restore(restore: Restore, progress) -> dict:
    if restore.remote is None:
        raise RuntimeError("the remote holding this backup was removed from xoweb")
    remote = bridge.remote_adapter(restore.remote)
    # Files found bad since the restore was asked for are refused by the engine too.
    known_bad = verification.known_bad([restore.remote])
    if restore.kind == RestoreKind.DISK_TO_FILE:
        path = Path(restore.file_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        done = bridge.restore_disk_to_file(
            remote,
            restore.backup_path,
            restore.vdi_uuid,
            path,
            fmt=restore.file_format,
            progress=progress,
            known_bad=known_bad,
        )
        # The file is on this worker's host: the page names it when the web host is another.
        return {
            "path": str(done.path),
            "size": done.size,
            "sha256": done.sha256,
            "host": settings.HOST_NAME,
        }
    sr = live_sr(restore.sr_uuid)
    with client_for(sr.pool) as client:
        if restore.kind == RestoreKind.DISK_TO_SR:
            vdi_uuid = bridge.restore_disk_to_sr(
                client,
                remote,
                restore.backup_path,
                restore.vdi_uuid,
                sr.uuid,
                progress=progress,
                known_bad=known_bad,
            )
            return {"vdi": vdi_uuid, "sr": sr.uuid}
        vm_uuid = bridge.restore_vm(
            client,
            remote,
            restore.backup_path,
            sr.uuid,
            progress=progress,
            new_macs=restore.new_macs,
            known_bad=known_bad,
        )
        return {"vm": vm_uuid, "sr": sr.uuid}
