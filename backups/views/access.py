"""The login + permission guard of every backups page (403 when refused)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required, permission_required


def needs(permission: str) -> Callable:
    """Log in first (redirect), then have ``permission`` (else 403)."""

    def decorate(view: Callable) -> Callable:
        return login_required(permission_required(permission, raise_exception=True)(view))

    return decorate


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"
