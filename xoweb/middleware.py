"""Refuse form and query values that are not text, before any view or form reads them.

Django decodes a query string or a form body that is not valid UTF-8 by replacing the bad bytes
with U+FFFD, so a name typed in another encoding would be saved mangled without a word; and a
NUL character reaches the database, where PostgreSQL refuses it with an error page. Here both
are answered with a 400 that names the field, and nothing is read or saved
(docs/security.md §Bad input). Multipart bodies are left to Django: xoweb takes no uploads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse

from xoweb.errors import bad_request_response

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class UnreadableInput(ValueError):
    """A field of the request is not text xoweb can store; ``str()`` names it."""


def _fields(encoded: bytes) -> Iterator[tuple[bytes, bytes]]:
    for pair in encoded.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        yield (
            unquote_to_bytes(name.replace(b"+", b" ")),
            unquote_to_bytes(value.replace(b"+", b" ")),
        )


def check_encoded_fields(encoded: bytes, where: str) -> None:
    """Raise :class:`UnreadableInput` naming the first field that is not UTF-8 text, or has NUL."""
    for raw_name, raw_value in _fields(encoded):
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableInput(f"a field name in the {where} is not valid UTF-8 text") from None
        try:
            value = raw_value.decode("utf-8")
        except UnicodeDecodeError:
            raise UnreadableInput(
                f"{name}: the value is not valid UTF-8 text (was it typed or pasted in another "
                "encoding?); nothing was saved"
            ) from None
        if "\x00" in value or "\x00" in name:
            raise UnreadableInput(f"{name}: the value contains a NUL character; nothing was saved")


class RejectUnreadableInput:
    """Answer 400 to a query string or form body holding a value that is not text."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            # WSGI hands the query string over as latin-1: encoding it back gives the bytes.
            query = request.META.get("QUERY_STRING", "").encode("latin-1", "replace")
            check_encoded_fields(query, "address")
            if request.method == "POST" and request.content_type == FORM_CONTENT_TYPE:
                check_encoded_fields(request.body, "form")
        except UnreadableInput as error:
            return bad_request_response(request, str(error))
        return self.get_response(request)
