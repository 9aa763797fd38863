"""Django admin for the pools app: pools are edited through the pages' form (same validation,
same connection test, write-only password); the cache is read-only."""

from __future__ import annotations

from django.contrib import admin
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from pools.forms import PoolForm, save_settings
from pools.models import SR, VBD, VDI, VM, Host, Pool, WatcherHeartbeat, XapiTask


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    form = PoolForm

    def save_model(self, request, obj, form, change) -> None:
        save_settings(obj, adding=not change)
        if form.trusted_fingerprint:
            self.message_user(
                request,
                f"The master's certificate was trusted on first use and pinned: SHA-256 "
                f"{form.trusted_fingerprint}. Compare it with the one shown on the host.",
            )

    # Error reports (DEBUG pages, mails to admins, the log) must not show the password typed.
    @method_decorator(sensitive_post_parameters("password"))
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(request, object_id, form_url, extra_context)

    list_display = ["name", "master_url", "status", "enabled", "last_event_at", "stale_since"]
    list_filter = ["status", "enabled"]
    search_fields = ["name", "master_url", "xapi_name_label", "xapi_uuid"]
    readonly_fields = [
        "status",
        "status_message",
        "stale_since",
        "last_event_at",
        "connected_at",
        "connected_url",
        "xapi_uuid",
        "xapi_name_label",
        "member_urls",
        "member_fingerprints",
        "created_at",
        "updated_at",
    ]


class WrittenByWatcherAdmin(admin.ModelAdmin):
    """Rows the watcher writes: people look, never add or edit.

    Deleting stays allowed, so that removing a pool in the admin can cascade to its cache (a
    deleted row comes back at the next resync if the pool still has it).
    """

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class CachedObjectAdmin(WrittenByWatcherAdmin):
    """The cache of a pool's XAPI objects, filtered by pool."""

    list_select_related = ["pool"]
    list_filter = ["pool"]
    search_fields = ["name_label", "uuid", "ref"]


@admin.register(Host)
class HostAdmin(CachedObjectAdmin):
    list_display = ["name_label", "pool", "address", "enabled", "stale_since"]


@admin.register(SR)
class SRAdmin(CachedObjectAdmin):
    list_display = ["name_label", "pool", "type", "content_type", "shared", "stale_since"]


@admin.register(VM)
class VMAdmin(CachedObjectAdmin):
    list_display = [
        "name_label",
        "pool",
        "power_state",
        "is_a_snapshot",
        "is_a_template",
        "is_control_domain",
        "stale_since",
    ]
    list_filter = ["pool", "power_state", "is_a_snapshot", "is_a_template", "is_control_domain"]


@admin.register(VDI)
class VDIAdmin(CachedObjectAdmin):
    list_display = ["name_label", "pool", "type", "virtual_size", "is_a_snapshot", "stale_since"]


@admin.register(VBD)
class VBDAdmin(CachedObjectAdmin):
    list_display = ["ref", "pool", "vm_ref", "vdi_ref", "type", "userdevice", "stale_since"]
    search_fields = ["ref", "uuid", "vm_ref", "vdi_ref"]


@admin.register(XapiTask)
class XapiTaskAdmin(CachedObjectAdmin):
    list_display = ["name_label", "pool", "status", "progress", "created", "finished"]
    list_filter = ["pool", "status"]


@admin.register(WatcherHeartbeat)
class WatcherHeartbeatAdmin(WrittenByWatcherAdmin):
    list_display = ["name", "hostname", "pid", "started_at", "beat_at"]
