from __future__ import annotations

from django.apps import AppConfig


class XowebConfig(AppConfig):
    """The project itself: settings, the dashboard, the error pages, shared checks of input."""

    name = "xoweb"

    def ready(self) -> None:
        from django.urls import register_converter

        from xoweb.converters import RowIdConverter

        # Before any urls.py is read: every app's URLs may use <id:pk>.
        register_converter(RowIdConverter, "id")
