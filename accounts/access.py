"""What a view needs: a login (always, unless it is public) and the permissions it declares.

Every xoweb view says what it needs with :func:`requires`; the checks then happen in this order:
login (the middleware, before the view), permissions (403), method (405)::

    @requires("pools.view_pool")                        # a page (GET and HEAD)
    def pool_list(request): ...

    @requires("pools.delete_pool", methods=["POST"])    # an action
    def pool_delete(request, pk): ...

    @requires("pools.add_pool", methods=["GET", "POST"])  # a form
    def pool_add(request): ...

    @requires("tasks.view_task", json=True)             # a JSON endpoint: 401/403 as JSON
    def task_list_json(request): ...

    @requires()                                         # any logged-in user
    def dashboard(request): ...

Pages show a button only when ``perms`` says the user may use it; the view refuses the rest.
A test walks every URL of every urls.py and fails for a view that is neither wrapped by
:func:`requires` nor :func:`public`, so a page added later is born behind the lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import resolve_url

from xoweb.errors import wants_json

#: Marks a view that anonymous people may use (the login page, the health check).
public = login_not_required


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def answers_json(request: HttpRequest, view: Callable | None) -> bool:
    """Whether the answer to ``request`` is JSON: a JSON endpoint, or a client asking for it."""
    return getattr(view, "json_endpoint", False) or wants_json(request)


def unauthenticated_response(request: HttpRequest, view: Callable | None) -> HttpResponse:
    """The answer to an anonymous request for a view that needs a login.

    A page is redirected to the login page. A JSON client or an htmx fragment cannot follow
    that redirect to a form: it gets 401, and htmx is told (``HX-Redirect``) to send the whole
    page to the login page, coming back to the page it was on.
    """
    login_url = resolve_url(settings.LOGIN_URL)
    if answers_json(request, view):
        return JsonResponse(
            {"error": f"log in first: this endpoint needs a session (log in at {login_url})"},
            status=401,
        )
    if is_htmx(request):
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        page = current.path if current.path else request.path
        response = HttpResponse("log in first", status=401, content_type="text/plain")
        response["HX-Redirect"] = redirect_to_login(page, login_url)["Location"]
        return response
    return redirect_to_login(request.get_full_path(), login_url)


def _missing(request: HttpRequest, permissions: tuple[str, ...]) -> list[str]:
    return [permission for permission in permissions if not request.user.has_perm(permission)]


def refusal(missing: list[str]) -> str:
    """What a person is told when a permission is missing (names it, says who can help)."""
    names = ", ".join(missing)
    return (
        f"your account may not do this: it needs the permission {names}. An administrator "
        "can add you to the group that holds it (docs/security.md, Permissions)."
    )


def requires(
    *permissions: str, methods: Iterable[str] = ("GET",), json: bool = False
) -> Callable[[Callable], Callable]:
    """Wrap a view: a login, every one of ``permissions``, and one of ``methods`` (HEAD goes
    with GET). ``json=True`` marks a JSON endpoint, whose refusals are JSON too."""
    allowed = tuple(dict.fromkeys(m.upper() for m in methods))
    if "GET" in allowed and "HEAD" not in allowed:
        allowed = (*allowed, "HEAD")

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return unauthenticated_response(request, checked)
            missing = _missing(request, permissions)
            if missing:
                if json:
                    return JsonResponse({"error": refusal(missing)}, status=403)
                raise PermissionDenied(refusal(missing))
            if request.method not in allowed:
                return HttpResponseNotAllowed(allowed)
            return view(request, *args, **kwargs)

        checked.required_permissions = permissions
        checked.allowed_methods = allowed
        checked.json_endpoint = json
        return checked

    return decorate
