"""Django admin for the tasks app: the task tree and its logs, read-mostly."""

from __future__ import annotations

from django.contrib import admin

from tasks.models import Task, TaskLogEntry


class TaskLogEntryInline(admin.TabularInline):
    model = TaskLogEntry
    extra = 0
    fields = ["at", "level", "message"]
    readonly_fields = fields
    can_delete = False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "kind", "status", "progress", "started", "ended", "parent"]
    list_filter = ["status", "kind", "pool"]
    search_fields = ["name", "about_label", "error"]
    date_hierarchy = "created"
    raw_id_fields = ["parent", "root"]
    list_select_related = ["parent"]
    readonly_fields = ["history", "created", "started", "updated", "ended", "host"]
    inlines = [TaskLogEntryInline]


@admin.register(TaskLogEntry)
class TaskLogEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "task", "level", "message"]
    list_filter = ["level"]
    search_fields = ["message"]
    raw_id_fields = ["task"]
    list_select_related = ["task"]
