"""The restore test ("health check", Xen Orchestra's ``HealthCheckVmBackup``), docs/verification.md §3.

A backup is proven by restoring it and booting it:

1. restore the backup as a new VM on the chosen SR (``vm_restore.restore_vm``) without its VIFs
   (it must not meet the original on the network), named ``[xoweb health check] <vm>``,
   tagged ``xoweb health check`` only (so no backup job's tag rule picks it up), and marked with
   ``xoweb:health-check = <mark>`` in ``other_config`` — on the VM and on each of its disks;
2. ``VM.start`` it and wait until its power state is ``Running``, at most ``timeout`` seconds
   from the start call (XO also waits for the guest's PV drivers; the simulator has no guest);
3. **always** destroy it: shut it down hard if it runs, destroy its disks, then the VM. What
   cannot be destroyed is named in the outcome, and — as the marks survive a crash of this
   process — :func:`find_leftovers` finds it for the next check, whose caller destroys it.

The outcome says whether it passed, and why not in a sentence a person can act on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pools.xapi import XapiClient, XapiError, XapiFailure

from .errors import EngineError
from .progress import NullProgress, Progress
from .remote import RemoteAdapter
from .snapshots import destroy_vdis
from .values import KnownBad
from .vm_restore import restore_vm

logger = logging.getLogger(__name__)

MARK = "xoweb:health-check"
TAG = "xoweb health check"
NAME_PREFIX = "[xoweb health check]"
#: How often the power state is read while waiting for the VM to run.
POLL_SECONDS = 0.5


@dataclass
class HealthCheckOutcome:
    ok: bool = False
    error: str = ""  # why it failed ("" when it passed)
    vm_uuid: str = ""  # the restored VM (destroyed since)
    destroyed: bool = False  # the restored VM and its disks are gone
    left: list[str] = field(default_factory=list)  # what could not be destroyed
    boot_seconds: float | None = None  # from the start call to Running
    duration: float = 0.0


def health_check(
    client: XapiClient,
    remote: RemoteAdapter,
    backup: str,
    sr_uuid: str,
    *,
    mark: str,
    timeout: float,
    progress: Progress | None = None,
    known_bad: KnownBad | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HealthCheckOutcome:
    """Restore ``backup`` (its metadata's path on ``remote``) to ``sr_uuid``, start it, wait
    until it runs, destroy it (see the module docstring). ``mark`` identifies this check's
    objects on the pool; ``timeout`` bounds the wait for the VM to run, in seconds."""
    progress = progress or NullProgress()
    outcome = HealthCheckOutcome()
    started = clock()
    entry = remote.backup(backup)
    vm_ref = ""
    try:
        vm_uuid = restore_vm(
            client,
            remote,
            backup,
            sr_uuid,
            progress=progress,
            name_label=f"{NAME_PREFIX} {entry.vm_name or entry.vm_uuid} ({entry.timestamp})",
            networks=False,
            mark={MARK: mark},
            vm_tags=[TAG],
            known_bad=known_bad,
        )
        outcome.vm_uuid = vm_uuid
        vm_ref = client.call("VM.get_by_uuid", vm_uuid)
        with progress.subtask(f"start the restored VM (at most {timeout:g} s)", kind="start"):
            outcome.boot_seconds = _start_and_wait(client, vm_ref, timeout, clock, sleep)
        outcome.ok = True
        progress.info(f"the restored VM ran {outcome.boot_seconds:.1f} s after its start")
    except EngineError as error:
        outcome.error = str(error)
    except XapiError as error:
        outcome.error = f"the restore test failed: {error}"
    finally:
        if vm_ref:
            with progress.subtask("destroy the restored VM", kind="destroy"):
                outcome.left = destroy_vm(client, vm_ref)
            outcome.destroyed = not outcome.left
            if outcome.left:
                what = ", ".join(outcome.left)
                progress.warning(
                    f"the restored VM {outcome.vm_uuid} could not be fully destroyed ({what}): "
                    "the next restore test removes it, or destroy it by hand"
                )
        else:
            outcome.destroyed = True  # nothing was left: restore_vm destroys what it made
        outcome.duration = clock() - started
    return outcome


def _start_and_wait(
    client: XapiClient,
    vm_ref: str,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> float:
    """``VM.start``, then wait for ``Running``; the seconds it took, or ``EngineError``."""
    started = clock()
    deadline = started + timeout
    try:
        task_ref = client.call("Async.VM.start", vm_ref, False, False)
    except XapiFailure as error:
        raise EngineError(f"the restored VM did not start: {error}") from None
    try:
        client.wait_task(task_ref, timeout=max(0.0, deadline - clock()))
    except XapiFailure as error:
        raise EngineError(f"the restored VM did not start: {error}") from None
    except XapiError:
        if clock() < deadline:
            raise  # the pool did not answer: not a slow start
        _cancel(client, task_ref)
        raise EngineError(
            f"the restored VM did not start within {timeout:g} s (its start was cancelled): "
            "raise the restore test's timeout, or look at the pool"
        ) from None
    finally:
        client.destroy_task(task_ref)
    while True:
        state = client.call("VM.get_power_state", vm_ref)
        if state == "Running":
            return clock() - started
        if clock() >= deadline:
            raise EngineError(
                f"the restored VM was still {state} {timeout:g} s after its start: raise the "
                "restore test's timeout, or look at the pool"
            )
        sleep(POLL_SECONDS)


def _cancel(client: XapiClient, task_ref: str) -> None:
    """Cancel a start that ran out of time and wait briefly for it to end, so that the
    destroy that follows does not meet it."""
    try:
        client.cancel_task(task_ref)
        client.wait_task(task_ref, timeout=10)
    except XapiError as error:
        logger.info("the cancelled start %s ended with: %s", task_ref, error)


def destroy_vm(client: XapiClient, vm_ref: str) -> list[str]:
    """Shut ``vm_ref`` down hard if it runs, destroy its disks, then the VM; return what is
    left (refs and the pool's reason), [] when all is gone."""
    try:
        record = client.call("VM.get_record", vm_ref)
    except XapiFailure as error:
        if error.code == "HANDLE_INVALID":
            return []
        return [f"VM {vm_ref}: {error}"]
    except XapiError as error:
        return [f"VM {vm_ref}: {error}"]
    left: list[str] = []
    try:
        if record.get("power_state") != "Halted":
            client.call("VM.hard_shutdown", vm_ref)
        disks = []
        for vbd in record.get("VBDs", []):
            vbd_record = client.call("VBD.get_record", vbd)
            if vbd_record.get("type") == "Disk" and not vbd_record.get("empty"):
                disks.append(vbd_record["VDI"])
        left += [f"disk {ref}" for ref in destroy_vdis(client, disks)]
        client.call("VM.destroy", vm_ref)
    except XapiFailure as error:
        if error.code != "HANDLE_INVALID":
            left.append(f"VM {record.get('uuid', vm_ref)}: {error}")
    except XapiError as error:
        left.append(f"VM {record.get('uuid', vm_ref)}: {error}")
    return left


@dataclass(frozen=True)
class Leftover:
    """A VM or disk a restore test made and did not destroy (its process died, or the pool
    refused), found by its mark."""

    kind: str  # "VM" | "VDI"
    ref: str
    uuid: str
    name: str
    mark: str


def find_leftovers(client: XapiClient) -> list[Leftover]:
    """Every VM and disk of the pool that carries a restore test's mark (VMs first)."""
    found = []
    for kind in ("VM", "VDI"):
        records = client.call(f"{kind}.get_all_records_where", 'field "is_a_snapshot" = "false"')
        for ref, record in records.items():
            mark = (record.get("other_config") or {}).get(MARK)
            if mark is not None:
                found.append(Leftover(kind, ref, record["uuid"], record["name_label"], mark))
    return found


def destroy_leftover(client: XapiClient, leftover: Leftover) -> list[str]:
    """Destroy one leftover (a VM with its disks); what is still left, [] when all is gone."""
    if leftover.kind == "VM":
        return destroy_vm(client, leftover.ref)
    return [f"disk {ref}" for ref in destroy_vdis(client, [leftover.ref])]
