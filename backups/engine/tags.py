"""Our marks on pool objects: ``other_config`` keys under ``xoweb:backup:`` (docs/backup-engine.md §5).

On a snapshot VM (when there is one) and on each snapshot VDI:

| key | value |
| --- | --- |
| ``job`` | the job's id |
| ``schedule`` | the schedule's id |
| ``vm`` | the *source* VM's uuid |
| ``datetime`` | UTC ``%Y%m%dT%H:%M:%SZ``: the backup's ``<ts>`` written XO's way |
| ``deltaChainLength`` | deltas since the last full ("0" after a full) |
| ``exported`` | ``"true"`` once every remote committed the backup: only then a base |
| ``pending`` | the job's id, set on the live VM (or VDI) for the instant of the snapshot call |

``pending`` is how a snapshot is ours from birth: XAPI copies ``other_config`` into a snapshot,
so a run killed between the snapshot call and the tagging leaves a snapshot the janitor still
recognises. Nothing but these keys marks an object as ours; another tool's snapshots are never
touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .layout import parse_timestamp

PREFIX = "xoweb:backup:"
JOB = PREFIX + "job"
SCHEDULE = PREFIX + "schedule"
VM = PREFIX + "vm"
DATETIME = PREFIX + "datetime"
CHAIN_LENGTH = PREFIX + "deltaChainLength"
EXPORTED = PREFIX + "exported"
PENDING = PREFIX + "pending"

_TAG_DATETIME = "%Y%m%dT%H:%M:%SZ"


def tag_datetime(timestamp: str) -> str:
    """``20261129T010000Z`` → ``20261129T01:00:00Z`` (XO's ``xo:backup:datetime`` format)."""
    return parse_timestamp(timestamp).strftime(_TAG_DATETIME)


def timestamp_of(tag: str) -> str:
    """``20261129T01:00:00Z`` → ``20261129T010000Z``; ValueError when it is not one."""
    return datetime.strptime(tag, _TAG_DATETIME).strftime("%Y%m%dT%H%M%SZ")


def snapshot_tags(
    *, job_id: str, schedule_id: str, vm_uuid: str, timestamp: str, chain_length: int
) -> dict[str, str]:
    return {
        JOB: job_id,
        SCHEDULE: schedule_id,
        VM: vm_uuid,
        DATETIME: tag_datetime(timestamp),
        CHAIN_LENGTH: str(chain_length),
    }


def without_ours(other_config: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in other_config.items() if not key.startswith(PREFIX)}


def has_ours(other_config: Mapping[str, str]) -> bool:
    return any(key.startswith(PREFIX) for key in other_config)


def is_ours(other_config: Mapping[str, str], *, job_id: str, vm_uuid: str) -> bool:
    """Tagged by this job for this VM, or marked pending by this job (a run that died)."""
    if other_config.get(PENDING) == job_id:
        return True
    return other_config.get(JOB) == job_id and other_config.get(VM) == vm_uuid


def is_exported(other_config: Mapping[str, str]) -> bool:
    return other_config.get(EXPORTED) == "true"


def chain_length(other_config: Mapping[str, str]) -> int:
    try:
        return max(0, int(other_config.get(CHAIN_LENGTH, "0")))
    except ValueError:
        return 0


def backup_timestamp(other_config: Mapping[str, str]) -> str:
    """The ``<ts>`` a tagged snapshot belongs to ("" when the tag is missing or malformed)."""
    try:
        return timestamp_of(other_config.get(DATETIME, ""))
    except ValueError:
        return ""
