"""Verification of the backups on a remote, and what its verdicts mean for backups and restores.

* :func:`request` records a verification asked for on a page (done on the workers, once:
  :func:`run`, the ``verify`` Celery task); :func:`check_now` does one in this process
  (``manage.py backup_check``); both end in :func:`perform`, under a task with progress.
* :func:`record` turns the engine's report into the last verdict on each backup and each file
  (docs/verification.md §2): keyed by remote and path, apart from the restore point index,
  so that a rebuild of the index keeps them. A check that does not read the files (not deep)
  keeps what the last deep check found in a file's bytes while its size and modification time
  are unchanged: a flipped byte stays found until a deep check reads the file sound again. A
  file whose metadata recorded no SHA-256 (Xen Orchestra's, or one a merge rewrote) is compared
  with what the first deep check read in it, while it is unchanged.
* :func:`known_bad` is the engine's hook: a file that failed is never the base of a delta (the
  next backup of the disk is a full, ``base_unverified``) and is never restored from.
* :func:`refusal` is the sentence a restore of a failed backup is refused with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from backups.choices import CheckStatus, CheckTrigger, ContentStatus
from backups.models import BackupVerdict, FileVerdict, Remote, RestorePoint, Verification
from backups.services import bridge, check_claims
from backups.services.heartbeat import holder_name
from tasks.reporter import TaskCancelled, no_current_task, task

if TYPE_CHECKING:  # the engine is reached through the bridge; only its type is named here
    from backups.engine.values import KnownBad

logger = logging.getLogger(__name__)

#: What a check that does not read a file keeps from the last deep check that did.
KEPT_CONTENT = (ContentStatus.OK, ContentStatus.MISMATCH, ContentStatus.UNREADABLE)
BAD_CONTENT = (ContentStatus.MISMATCH, ContentStatus.UNREADABLE)


# --- asking -----------------------------------------------------------------------------------


def request(
    remote: Remote,
    *,
    deep: bool = False,
    vm_uuids: Sequence[str] = (),
    trigger: str = CheckTrigger.PAGE,
    run=None,
    requested_by: str = "",
    queue: bool = True,
) -> Verification:
    """Record a verification; queued on the workers when the transaction commits."""
    from backups import tasks as celery_tasks

    verification = Verification.objects.create(
        remote=remote,
        deep=deep,
        vm_uuids=list(vm_uuids),
        trigger=trigger,
        run=run,
        requested_by=requested_by[:150],
    )
    if queue:
        transaction.on_commit(lambda: celery_tasks.verify.delay(verification.pk))
    return verification


def run(verification_id: int) -> str:
    """Do a recorded verification once (the ``verify`` Celery task); its final status."""
    check_claims.interrupt_dead(Verification)
    verification = check_claims.claim(Verification, verification_id)
    if verification is None:
        return "not claimed"
    return perform(verification)


def check_now(
    remote: Remote, *, deep: bool = False, vm_uuids: Sequence[str] = (), requested_by: str = ""
) -> tuple[Verification, Any]:
    """A verification done in this process (``backup_check``): the row and the engine's report
    (``None`` when it could not run; the row says why)."""
    verification = request(
        remote,
        deep=deep,
        vm_uuids=vm_uuids,
        trigger=CheckTrigger.COMMAND,
        requested_by=requested_by,
        queue=False,
    )
    verification = check_claims.claim(Verification, verification.pk)
    report = _perform(verification)
    verification.refresh_from_db()
    return verification, report


def perform(verification: Verification) -> str:
    """Verify (the row is claimed: running); record the verdicts; the final status."""
    _perform(verification)
    verification.refresh_from_db()
    return verification.status


def _perform(verification: Verification) -> Any:
    remote = verification.remote
    errors = bridge.engine_errors()
    report = None
    what = "Deep check" if verification.deep else "Check"
    scope = ", ".join(uuid[:8] for uuid in verification.vm_uuids) or "every VM"
    title = f"{what} of the backups on {remote.name} ({scope})"
    try:
        with (
            check_claims.beating(verification),
            no_current_task(),
            task(title, kind="verify", about=verification, cancellable=True) as progress,
        ):
            Verification.objects.filter(pk=verification.pk).update(task_id=progress.id)
            report = bridge.verify_remote(
                bridge.remote_adapter(remote),
                vm_uuids=verification.vm_uuids or None,
                deep=verification.deep,
                progress=progress,
                holder=f"{holder_name()}/verification-{verification.pk}",
                lock_lease=float(settings.BACKUP_LOCK_LEASE_SECONDS),
                lock_heartbeat=float(settings.BACKUP_LOCK_HEARTBEAT_SECONDS),
            )
            summary = record(verification, report)
            for backup in report.failed:
                progress.error(f"{backup.path}: {report.problems(backup)[0]}")
            progress.set_result(summary)
    except errors.EngineError as error:
        check_claims.end(verification, CheckStatus.ERROR, f"not checked: {error}")
    except TaskCancelled:
        check_claims.end(
            verification, CheckStatus.ERROR, "cancelled: no verdict was recorded by this check"
        )
    except Exception as error:
        logger.exception("verification %s failed", verification.pk)
        check_claims.end(verification, CheckStatus.ERROR, str(error) or type(error).__name__)
    return report


# --- verdicts ---------------------------------------------------------------------------------


def _vm_of(path: str) -> str:
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else ""


def record(verification: Verification, report: Any) -> dict[str, Any]:
    """Store the report as the last verdicts of its VM folders and end the row; the summary.

    Steps: each file's verdict (a check that did not read it keeps the last deep check's word
    on its bytes while the file is unchanged); each backup's verdict with every problem of its
    chains; the verdicts of files and backups gone from the checked folders deleted; the row
    ended ``passed`` or ``failed`` with its counts.
    """
    remote = verification.remote
    now = timezone.now()
    earlier = {
        verdict.path: verdict
        for verdict in FileVerdict.objects.filter(remote=remote, vm_uuid__in=report.vms)
    }
    files, kept = [], report.earlier
    for path, file in report.files.items():
        row = FileVerdict(
            remote=remote,
            path=path,
            vm_uuid=_vm_of(path),
            errors=file.errors,
            warnings=file.warnings,
            parent=file.parent,
            size=file.size,
            mtime_ns=file.mtime_ns,
            content=str(file.content),
            content_problem=file.content_problem,
            sha256=file.sha256,
            content_checked_at=now if report.deep else None,
            checked_at=now,
            verification=verification,
        )
        before = earlier.get(path)
        unchanged = before is not None and (before.size, before.mtime_ns) == (
            file.size,
            file.mtime_ns,
        )
        if not report.deep and unchanged and before.content in KEPT_CONTENT:
            row.content, row.content_problem = before.content, before.content_problem
            row.sha256, row.content_checked_at = before.sha256, before.content_checked_at
            if before.content_problem:
                kept[path] = [before.content_problem]
        elif report.deep and row.content == ContentStatus.NO_CHECKSUM and unchanged:
            _compare_with_earlier(row, before, kept)
        row.ok = not row.errors and row.content not in BAD_CONTENT
        files.append(row)
    backups = [
        BackupVerdict(
            remote=remote,
            path=backup.path,
            vm_uuid=backup.vm_uuid,
            ok=not report.problems(backup),
            deep=report.deep,
            problems=report.problems(backup),
            chains=backup.chains,
            checked_at=now,
            verification=verification,
        )
        for backup in report.backups
    ]
    failed = [verdict for verdict in backups if not verdict.ok]
    with transaction.atomic():
        FileVerdict.objects.bulk_create(
            files,
            update_conflicts=True,
            unique_fields=["remote", "path"],
            update_fields=[f.name for f in FileVerdict._meta.concrete_fields if _updated(f)],
            batch_size=500,
        )
        BackupVerdict.objects.bulk_create(
            backups,
            update_conflicts=True,
            unique_fields=["remote", "path"],
            update_fields=[f.name for f in BackupVerdict._meta.concrete_fields if _updated(f)],
            batch_size=500,
        )
        FileVerdict.objects.filter(remote=remote, vm_uuid__in=report.vms).exclude(
            path__in=list(report.files)
        ).delete()
        BackupVerdict.objects.filter(remote=remote, vm_uuid__in=report.vms).exclude(
            path__in=[backup.path for backup in report.backups]
        ).delete()
    summary = {
        "backups": len(backups),
        "failed": len(failed),
        "files": len(files),
        "bytes_read": report.bytes_read,
        "skipped": report.skipped,
    }
    message = (
        f"{len(backups)} backup(s) of {len(report.vms)} VM(s) checked"
        f"{', every file read' if report.deep else ''}: "
        + (f"{len(failed)} failed" if failed else "all sound")
        + (f"; {len(report.skipped)} VM(s) not checked (locked)" if report.skipped else "")
    )
    check_claims.end(
        verification,
        CheckStatus.FAILED if failed else CheckStatus.PASSED,
        message,
        backups_checked=len(backups),
        backups_failed=len(failed),
        files_checked=len(files),
        bytes_read=report.bytes_read,
        skipped=report.skipped,
        failures=[
            {
                "path": backup.path,
                "vm": backup.vm_uuid,
                "vm_name": backup.vm_name,
                "timestamp": backup.timestamp,
                "problems": report.problems(backup),
            }
            for backup in report.backups
            if report.problems(backup)
        ],
    )
    return summary


def _compare_with_earlier(row: FileVerdict, before: FileVerdict, kept: dict) -> None:
    """A file no metadata gave a SHA-256 (Xen Orchestra's, or one a merge rewrote) is compared
    with what an earlier deep check read in it, while its size and modification time are the
    same: bit rot changes neither. The earlier SHA-256 stays the reference until the file is
    rewritten."""
    references = (ContentStatus.OK, ContentStatus.MISMATCH, ContentStatus.NO_CHECKSUM)
    if before.content not in references or not before.sha256:
        return
    if row.sha256 == before.sha256:
        row.content = ContentStatus.OK
        return
    when = timezone.localtime(before.content_checked_at or before.checked_at)
    row.content_problem = (
        f"{row.path}: its SHA-256 is {row.sha256[:16]}…, not the {before.sha256[:16]}… a deep "
        f"check read on {when:%Y-%m-%d %H:%M}, though its size and modification time are the "
        "same: its bytes changed since (bit rot)"
    )
    row.content, row.sha256 = ContentStatus.MISMATCH, before.sha256
    kept[row.path] = [row.content_problem]


def _updated(field) -> bool:
    return not field.primary_key and field.name not in ("remote", "path")


# --- what verdicts mean -----------------------------------------------------------------------


def known_bad(remotes: Iterable[Remote]) -> KnownBad:
    """The engine's ``known_bad(remote_id, relpath)`` for these remotes: the files whose last
    verdict is bad (read once, when the backup or restore starts)."""
    bad = {
        (str(remote_uuid), path)
        for remote_uuid, path in FileVerdict.objects.filter(
            remote__in=list(remotes), ok=False
        ).values_list("remote__uuid", "path")
    }
    return lambda remote_id, relpath: (remote_id, relpath) in bad


def refusal(point: RestorePoint) -> str | None:
    """Why ``point`` is not restored (it failed its last verification), or None."""
    verdict = BackupVerdict.objects.filter(remote_id=point.remote_id, path=point.path).first()
    if verdict is None or verdict.ok:
        return None
    first = verdict.problems[0] if verdict.problems else "a problem"
    more = len(verdict.problems) - 1
    when = timezone.localtime(verdict.checked_at).strftime("%Y-%m-%d %H:%M")
    return (
        f"backup {point.timestamp} of {point.vm_name or point.vm_uuid} on remote "
        f"{point.remote.name} failed its last verification ({when}): {first}"
        + (f" (and {more} more problem(s))" if more > 0 else "")
        + "; it is not restored: restore another backup, or run backup_check again once the "
        "remote is repaired"
    )


def verdicts_of(points: Iterable[RestorePoint]) -> dict[int, BackupVerdict]:
    """The last verdict of each point, by the point's id (one query)."""
    points = list(points)
    if not points:
        return {}
    verdicts = BackupVerdict.objects.filter(
        remote_id__in={point.remote_id for point in points},
        path__in={point.path for point in points},
    )
    by_key = {(verdict.remote_id, verdict.path): verdict for verdict in verdicts}
    return {
        point.pk: by_key[(point.remote_id, point.path)]
        for point in points
        if (point.remote_id, point.path) in by_key
    }
