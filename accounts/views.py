"""xoweb's own login and logout pages, and the answer to a login that is locked out."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth import views as auth_views
from django.forms.utils import ErrorDict, ErrorList
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

LOCKED_OUT_STATUS = 429


class LoginView(auth_views.LoginView):
    """Public, like Django's (its dispatch is marked ``login_not_required``)."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """POST only (Django's rule: a link or an image must not log anyone out)."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You are logged out.")
        return response


def lockout_message(username: str) -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    who = f"as {username!r} " if username else ""
    return (
        f"Too many failed logins: logins {who}from this address are refused for {minutes} "
        f"minutes. Wait, or ask an administrator to unlock it "
        f"(manage.py axes_reset_username {username or 'NAME'})."
    )


def locked_out(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """django-axes' answer to a locked-out login (``AXES_LOCKOUT_CALLABLE``): the login page it
    came from, xoweb's or the admin's, with the lock-out said plainly, and status 429."""
    username = str((credentials or {}).get("username") or request.POST.get("username", ""))
    message = lockout_message(username[:150])
    if request.path == reverse("admin:login"):
        form = AdminAuthenticationForm(request, initial={"username": username[:150]})
        # An unbound form shows these errors as they are (binding it would try the password).
        form._errors = ErrorDict({"__all__": ErrorList([message])})
        context = {
            **admin.site.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": username,
            "form": form,
            REDIRECT_FIELD_NAME: request.POST.get(REDIRECT_FIELD_NAME, reverse("admin:index")),
        }
        return render(request, "admin/login.html", context, status=LOCKED_OUT_STATUS)
    form = LoginView.form_class(request, initial={"username": username[:150]})
    context = {"form": form, "lockout": message, "next": request.POST.get(REDIRECT_FIELD_NAME, "")}
    return render(request, "accounts/login.html", context, status=LOCKED_OUT_STATUS)
