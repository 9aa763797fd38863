from django.apps import AppConfig


class PoolsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "pools"

    def ready(self) -> None:
        from pools import receivers  # noqa: F401  (connects the pool signal receivers)
