"""Django admin for the backups app: every model. Remotes, jobs and schedules are edited with
the same forms as the pages (one validation path); what runs wrote is read-only."""

from __future__ import annotations

from django.contrib import admin

from backups.forms import BackupJobForm, RemoteForm, ScheduleForm
from backups.models import (
    BackupJob,
    BackupRun,
    BackupVerdict,
    CleanReport,
    FileVerdict,
    HealthCheck,
    Remote,
    Restore,
    RestorePoint,
    Schedule,
    Verification,
    VmBackup,
    VmBackupDisk,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the workers: shown, never edited or added by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Remote)
class RemoteAdmin(admin.ModelAdmin):
    form = RemoteForm
    list_display = ["name", "path", "enabled", "status", "space_free", "checked_at"]
    list_filter = ["enabled", "status"]
    search_fields = ["name", "path"]
    readonly_fields = [
        "uuid",
        "status",
        "status_message",
        "checked_at",
        "space_total",
        "space_used",
        "space_free",
    ]


class ScheduleInline(admin.TabularInline):
    model = Schedule
    form = ScheduleForm
    extra = 0
    fields = ScheduleForm.Meta.fields  # the page's form, field for field


@admin.register(BackupJob)
class BackupJobAdmin(admin.ModelAdmin):
    form = BackupJobForm
    inlines = [ScheduleInline]
    list_display = ["name", "mode", "vm_selection", "concurrency", "full_interval", "updated_at"]
    list_filter = ["mode", "vm_selection"]
    search_fields = ["name", "uuid"]
    readonly_fields = ["uuid"]
    list_select_related = ["pool"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "name",
        "job",
        "cron",
        "timezone",
        "enabled",
        "retention",
        "force_full",
        "verify",
        "health_check",
    ]
    list_filter = ["enabled", "force_full", "verify", "health_check"]
    search_fields = ["name", "job__name", "uuid"]
    readonly_fields = ["uuid", "periodic_task"]
    list_select_related = ["job"]
    actions = ["enable", "disable"]

    # Each schedule is saved on its own (not QuerySet.update()), so that its beat entry follows
    # (backups/signals.py).
    @admin.action(description="Enable the selected schedules", permissions=["change"])
    def enable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable the selected schedules", permissions=["change"])
    def disable(self, request, queryset) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool) -> None:
        changed = 0
        for schedule in queryset.select_related("job"):
            if schedule.enabled != enabled:
                schedule.enabled = enabled
                schedule.save(update_fields=["enabled", "updated_at"])
                changed += 1
        word = "enabled" if enabled else "disabled"
        self.message_user(request, f"{changed} schedule(s) {word}; beat follows.")


class VmBackupInline(admin.TabularInline):
    model = VmBackup
    extra = 0
    can_delete = False
    fields = ["vm_name", "vm_uuid", "status", "bytes", "started", "ended", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BackupRun)
class BackupRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "job", "schedule", "trigger", "status", "created", "started", "ended"]
    list_filter = ["status", "trigger"]
    search_fields = ["job__name"]
    list_select_related = ["job", "schedule"]
    inlines = [VmBackupInline]


class VmBackupDiskInline(admin.TabularInline):
    model = VmBackupDisk
    extra = 0
    can_delete = False
    fields = ["vdi_name", "vdi_uuid", "mode", "reason", "bytes", "duration", "sha256"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(VmBackup)
class VmBackupAdmin(ReadOnlyAdmin):
    list_display = ["vm_name", "run", "status", "bytes", "started", "ended", "worker"]
    list_filter = ["status"]
    search_fields = ["vm_name", "vm_uuid"]
    list_select_related = ["run", "run__job"]
    inlines = [VmBackupDiskInline]


@admin.register(VmBackupDisk)
class VmBackupDiskAdmin(ReadOnlyAdmin):
    list_display = ["vdi_name", "vm_backup", "mode", "reason_code", "bytes"]
    list_filter = ["mode", "reason_code"]
    search_fields = ["vdi_uuid", "vdi_name"]
    list_select_related = ["vm_backup", "vm_backup__run"]


@admin.register(RestorePoint)
class RestorePointAdmin(ReadOnlyAdmin):
    list_display = ["vm_name", "vm_uuid", "timestamp", "remote", "mode", "size"]
    list_filter = ["mode", "remote"]
    search_fields = ["vm_name", "vm_uuid", "path"]
    list_select_related = ["remote"]


@admin.register(Restore)
class RestoreAdmin(ReadOnlyAdmin):
    list_display = ["pk", "vm_name", "timestamp", "kind", "status", "created", "ended"]
    list_filter = ["kind", "status"]
    search_fields = ["vm_name", "vm_uuid"]


@admin.register(CleanReport)
class CleanReportAdmin(ReadOnlyAdmin):
    list_display = ["vm_uuid", "remote", "checked_at", "trigger", "merges_done", "merges_left"]
    list_filter = ["remote", "trigger"]
    search_fields = ["vm_uuid"]


@admin.register(Verification)
class VerificationAdmin(ReadOnlyAdmin):
    list_display = ["pk", "remote", "deep", "trigger", "status", "created", "ended", "message"]
    list_filter = ["status", "deep", "trigger"]
    search_fields = ["remote__name", "message"]
    list_select_related = ["remote"]


@admin.register(BackupVerdict)
class BackupVerdictAdmin(ReadOnlyAdmin):
    list_display = ["path", "remote", "ok", "deep", "checked_at"]
    list_filter = ["ok", "deep", "remote"]
    search_fields = ["path", "vm_uuid"]
    list_select_related = ["remote"]


@admin.register(FileVerdict)
class FileVerdictAdmin(ReadOnlyAdmin):
    list_display = ["path", "remote", "ok", "content", "checked_at"]
    list_filter = ["ok", "content", "remote"]
    search_fields = ["path", "vm_uuid", "sha256"]
    list_select_related = ["remote"]


@admin.register(HealthCheck)
class HealthCheckAdmin(ReadOnlyAdmin):
    list_display = ["pk", "vm_name", "timestamp", "status", "destroyed", "created", "ended"]
    list_filter = ["status", "trigger"]
    search_fields = ["vm_name", "vm_uuid", "restored_vm_uuid"]
