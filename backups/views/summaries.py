"""Summaries that several backups pages show."""

from __future__ import annotations


def with_disk_summaries(runs) -> list:
    """The runs, each with ``disk_summary``: how many disks were fulls and deltas, and the
    reasons of the fulls (one query for all the runs, whatever their number)."""
    from collections import Counter, defaultdict

    from backups.models import VmBackupDisk

    runs = list(runs)
    modes: dict[int, Counter] = defaultdict(Counter)
    reasons: dict[int, Counter] = defaultdict(Counter)
    rows = VmBackupDisk.objects.filter(vm_backup__run__in=runs).values_list(
        "vm_backup__run_id", "mode", "reason_code"
    )
    for run_id, mode, reason_code in rows:
        modes[run_id][mode] += 1
        if mode == "full" and reason_code:
            reasons[run_id][reason_code.replace("_", " ").replace("-", " ")] += 1
    for run in runs:
        parts = [f"{count} {mode}" for mode, count in sorted(modes[run.pk].items())]
        why = ", ".join(f"{reason} ×{count}" for reason, count in reasons[run.pk].items())
        run.disk_summary = "; ".join(parts) + (f" (fulls: {why})" if why else "")
    return runs
