"""Values people put in addresses (ids, page numbers, choices, searches): checked, or refused.

A view reads its query parameters through these functions, which raise :class:`BadParameter`
naming the parameter and the problem; the view answers it with a 400
(``xoweb.errors.bad_request_response``), never with a 500 from a value the database cannot
hold, and never by silently showing something else than what was asked.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The largest id a row can have (BigAutoField: a signed 64-bit integer in SQLite and PostgreSQL).
MAX_ID = 2**63 - 1
#: The longest search xoweb accepts; SQLite refuses LIKE patterns over 50,000 characters.
MAX_SEARCH_LENGTH = 200
_DIGITS = frozenset("0123456789")


class BadParameter(ValueError):
    """A query parameter has a value xoweb does not accept; ``str()`` names it and says why."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        super().__init__(f"{name}: {message}")


def _show(raw: str) -> str:
    return repr(raw if len(raw) <= 40 else raw[:40] + "…")


def _whole_number(raw: str) -> int | None:
    # Only ASCII digits: str.isdigit() also accepts '²' or '١', which int() may then refuse.
    if raw and len(raw) <= 19 and set(raw) <= _DIGITS:
        return int(raw)
    return None


def parse_id(name: str, raw: str | None) -> int | None:
    """The id in ``raw`` (None when empty): a whole number from 1 to :data:`MAX_ID`."""
    raw = (raw or "").strip()
    if not raw:
        return None
    number = _whole_number(raw)
    if number is None or not 1 <= number <= MAX_ID:
        raise BadParameter(name, f"{_show(raw)} is not an id (a whole number from 1 to {MAX_ID})")
    return number


def parse_page(raw: str | None, name: str = "page") -> int:
    """A page number from 1 (1 when empty); past the last page, the paginator shows the last."""
    raw = (raw or "").strip()
    if not raw:
        return 1
    number = _whole_number(raw)
    if number is None or number < 1:
        raise BadParameter(name, f"{_show(raw)} is not a page number (a whole number from 1)")
    return number


def parse_choice(name: str, raw: str | None, choices: Iterable[str], default: str) -> str:
    """``raw`` if it is one of ``choices``, ``default`` when empty."""
    choices = list(choices)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        known = ", ".join(choice for choice in choices if choice)
        raise BadParameter(name, f"{_show(raw)} is not one of {known}")
    return raw


def parse_search(name: str, raw: str | None, max_length: int = MAX_SEARCH_LENGTH) -> str:
    """A search text, stripped, at most ``max_length`` characters."""
    text = (raw or "").strip()
    if len(text) > max_length:
        raise BadParameter(
            name, f"a search is at most {max_length} characters; this one has {len(text)}"
        )
    return text
