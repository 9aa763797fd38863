"""What the last clean pass found in each VM folder of each remote (docs/maintenance.md).

The clean pass runs at the start and the end of every VM backup, in merge tasks, and from
``backup_clean`` / ``backup_prune``; each pass that changes or checks a VM folder (not a dry
run) replaces the row of that folder, so the remote's page shows what the remote looks like
now and what was last repaired there.
"""

from __future__ import annotations

from django.db import models


class CleanReport(models.Model):
    """The last clean pass of one VM folder (``xo-vm-backups/<vm>``) on one remote."""

    remote = models.ForeignKey(
        "backups.Remote", on_delete=models.CASCADE, related_name="clean_reports"
    )
    vm_uuid = models.CharField("VM uuid", max_length=36)
    checked_at = models.DateTimeField()
    trigger = models.CharField(
        max_length=40, help_text="What ran the pass: a backup, a merge task, a command."
    )
    # [{"kind", "path", "message", "action", "severity", "done"}], in the order found.
    findings = models.JSONField(default=list, blank=True)
    # Backups retention dropped in this pass: [{"path", "timestamp", "reason"}].
    dropped = models.JSONField(default=list, blank=True)
    merges_done = models.PositiveIntegerField(default=0)
    merges_left = models.PositiveIntegerField(
        default=0, help_text="Merges left for the next pass (the merge budget was reached)."
    )
    skipped = models.TextField(blank=True, help_text="Why the pass did nothing (a live lock).")
    task = models.ForeignKey(
        "tasks.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["remote", "vm_uuid"]
        constraints = [
            models.UniqueConstraint(
                fields=["remote", "vm_uuid"],
                name="backups_cleanreport_one_per_vm_folder",
                violation_error_message="This VM folder already has a clean report.",
            )
        ]

    def __str__(self) -> str:
        return f"clean pass of {self.vm_uuid} on {self.remote_id}"

    @property
    def problems(self) -> list[dict]:
        """Findings worth a person's look (warnings and errors)."""
        return [f for f in self.findings if f.get("severity") in ("warning", "error")]
