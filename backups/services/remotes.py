"""A remote's check: exists or can be created, writable (a real write-fsync-read-delete through
the engine's adapter), and its space. Run when a person saves a remote (with a time limit: a
hung NFS mount must not hang the page), before each run, and on request."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

from backups.choices import RemoteStatus
from backups.models import Remote
from backups.services import bridge, outlook


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str
    total: int | None = None
    used: int | None = None
    free: int | None = None


def probe(remote: Remote) -> CheckResult:
    """Check ``remote``'s folder through the engine's adapter (no time limit, no row written)."""
    errors = bridge.engine_errors()
    try:
        space = bridge.remote_adapter(remote).check()
    except (errors.EngineError, OSError) as error:  # it names the folder and the OS error
        return CheckResult(False, str(error) or type(error).__name__)
    return CheckResult(
        True,
        f"writable; {_size(space.free)} free of {_size(space.total)}",
        space.total,
        space.used,
        space.free,
    )


def probe_with_timeout(remote: Remote, timeout: float | None = None) -> CheckResult:
    """:func:`probe` in a thread, given up after ``timeout`` seconds (``REMOTE_CHECK_TIMEOUT``)."""
    timeout = settings.REMOTE_CHECK_TIMEOUT if timeout is None else timeout
    results: list[CheckResult] = []
    worker = threading.Thread(
        target=lambda: results.append(probe(remote)), name="remote-check", daemon=True
    )
    worker.start()
    worker.join(timeout)
    if not results:
        return CheckResult(
            False,
            f"{remote.path} did not answer within {timeout:g} s (a hung network mount?): "
            "check the mount on this host",
        )
    return results[0]


def record(remote: Remote, result: CheckResult) -> None:
    """Store a check's outcome on the row (only the check's columns)."""
    remote.status = RemoteStatus.OK if result.ok else RemoteStatus.FAILED
    remote.status_message = result.message
    remote.checked_at = timezone.now()
    if result.ok:
        remote.space_total, remote.space_used, remote.space_free = (
            result.total,
            result.used,
            result.free,
        )
    if remote.pk:
        if result.ok and result.total:
            # Every reading feeds the storage outlook (growth per day, the date it fills).
            outlook.record_reading(
                remote, total=result.total, free=result.free or 0, now=remote.checked_at
            )
        Remote.objects.filter(pk=remote.pk).update(
            status=remote.status,
            status_message=remote.status_message,
            checked_at=remote.checked_at,
            space_total=remote.space_total,
            space_used=remote.space_used,
            space_free=remote.space_free,
        )


def check(remote: Remote) -> CheckResult:
    """Probe and record (in a worker, or a command)."""
    result = probe(remote)
    record(remote, result)
    return result


def _size(value: int | None) -> str:
    if value is None:
        return "?"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.1f} {unit}" if unit != "B" else f"{int(amount)} B"
        amount /= 1024
    return f"{value} B"
