"""How xoweb answers a request it cannot serve: a page in its own look (or JSON) that says why.

* :func:`bad_request_response` is what views and middleware return for bad input: 400 with the
  field and the problem, as an HTML page or as ``{"error": …}`` for a JSON client;
* :func:`bad_request` is Django's ``handler400``: the request was refused before any view ran
  (a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``, too many fields, an unknown host name), and the
  person is told which, instead of a bare "Bad Request (400)".
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import (
    DisallowedHost,
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


def wants_json(request: HttpRequest) -> bool:
    """Whether the client asked for JSON rather than a page (an API client, a script)."""
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


def bad_request_response(
    request: HttpRequest, message: str, *, json: bool | None = None
) -> HttpResponse:
    """400 with ``message`` (which names the field and the problem), as a page or as JSON."""
    if json if json is not None else wants_json(request):
        return JsonResponse({"error": message}, status=400)
    body = render_to_string("400.html", {"message": message}, request=request)
    return HttpResponse(body, status=400)


def _mebibytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def refusal_reason(exception: BaseException | None) -> str:
    """What a person should be told about a request Django refused before any view ran."""
    if isinstance(exception, RequestDataTooBig):
        return (
            f"the form sent more than {_mebibytes(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)}, the most "
            "xoweb accepts: no field needs that much, check what was pasted. Nothing was saved."
        )
    if isinstance(exception, TooManyFieldsSent | TooManyFilesSent):
        return "the form sent more fields than xoweb accepts. Nothing was saved."
    if isinstance(exception, DisallowedHost):
        return (
            "this host name is not one xoweb answers to: add it to ALLOWED_HOSTS "
            "(docs/security.md)."
        )
    if isinstance(exception, SuspiciousOperation):
        return "the request was refused as unsafe. Nothing was saved."
    return "the request could not be understood. Nothing was saved."


def bad_request(request: HttpRequest, exception: BaseException | None = None) -> HttpResponse:
    """``handler400``: say why the request was refused, in xoweb's look."""
    return bad_request_response(request, refusal_reason(exception))
