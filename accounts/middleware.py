"""Django's LoginRequiredMiddleware, answering 401 where a redirect cannot be followed."""

from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware

from accounts.access import unauthenticated_response


class LoginRequired(LoginRequiredMiddleware):
    """Every view needs a login unless marked :func:`accounts.access.public`; an anonymous
    page request goes to the login page, a JSON or htmx request gets 401 (accounts/access.py)."""

    def handle_no_permission(self, request, view_func):
        return unauthenticated_response(request, view_func)
