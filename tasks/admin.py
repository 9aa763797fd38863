"""Django admin for the tasks app: the task tree and its logs, read-only.

Rows are written by the processes doing the work (tasks/reporter.py); an edit or a delete here
would only confuse them, so the admin shows and searches, nothing more.
"""

from __future__ import annotations

from django.contrib import admin

from tasks.models import Task, TaskLogEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class TaskLogEntryInline(admin.TabularInline):
    model = TaskLogEntry
    extra = 0
    fields = ["at", "level", "message"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "kind", "status", "progress", "started", "ended", "parent"]
    list_filter = ["status", "kind", "pool"]
    search_fields = ["name", "about_label", "error"]
    date_hierarchy = "created"
    raw_id_fields = ["parent", "root"]
    list_select_related = ["parent"]
    inlines = [TaskLogEntryInline]


@admin.register(TaskLogEntry)
class TaskLogEntryAdmin(ReadOnlyAdmin):
    list_display = ["at", "task", "level", "message"]
    list_filter = ["level"]
    search_fields = ["message"]
    raw_id_fields = ["task"]
    list_select_related = ["task"]
