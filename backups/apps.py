from django.apps import AppConfig
from django.db.models.signals import post_migrate


class BackupsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "backups"

    def ready(self) -> None:
        from backups import signals  # connects the receivers of the models' signals

        post_migrate.connect(signals.sync_after_migrate, sender=self)
