"""Checks of what a script hands to ``manage.py`` before any command runs.

Python keeps the bytes of an argument that are not UTF-8 as lone surrogates; saved as they are,
they fail deep in the database with a traceback (or get mangled). ``manage.py`` refuses such an
argument first, in one line that names its option (docs/security.md §Bad input).
"""

from __future__ import annotations


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def unreadable_argument(argv: list[str]) -> str | None:
    """A one-line message naming the first argument of ``argv`` (after the command name) that
    is not UTF-8 text, or None when all are."""
    for index, argument in enumerate(argv):
        if _is_text(argument):
            continue
        if argument.startswith("--") and "=" in argument:
            where = argument.split("=", 1)[0]
        elif index > 0 and argv[index - 1].startswith("-") and _is_text(argv[index - 1]):
            where = argv[index - 1]
        else:
            where = f"argument {index + 1}"
        return f"{where}: the value is not valid UTF-8 text (was it written in another encoding?)"
    return None


def decode_line(raw: bytes, option: str) -> str:
    """A line read as bytes, as text without its line end; ValueError naming ``option`` when it
    is not UTF-8 text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(
            f"{option}: standard input is not valid UTF-8 text (was it written in another "
            "encoding?)"
        ) from None
    return text.rstrip("\r\n")
