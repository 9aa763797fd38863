from __future__ import annotations

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db.models.signals import post_migrate


def _sync_after_the_last_app(sender: AppConfig, using: str = "default", apps=None, **kwargs):
    """post_migrate is sent once per app, in INSTALLED_APPS order, each time after that app's
    permissions were created: the sync waits for the last one, when every permission exists."""
    from accounts.roles import sync_groups

    with_models = [config for config in global_apps.get_app_configs() if config.models_module]
    if with_models and sender.label == with_models[-1].label:
        sync_groups(apps, using=using)


class AccountsConfig(AppConfig):
    """Logins, the three groups and their permissions (docs/security.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"

    def ready(self) -> None:
        post_migrate.connect(_sync_after_the_last_app, dispatch_uid="accounts.sync_groups")
