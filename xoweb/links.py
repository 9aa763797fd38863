"""Which links xoweb puts in an ``href``: pages of this site and http(s) addresses, nothing else.

A stored link (a task's "about" link…) that says ``javascript:`` or ``data:`` would run in the
browser of whoever clicks it. The models refuse such a link with a message naming the field
(:func:`validate_link`), and the pages show what is stored only through :func:`safe_link`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError


def is_safe_link(url: str) -> bool:
    """A path of this site (``/tasks/3/``, not ``//elsewhere``) or an http(s) URL with a host."""
    if not url or any(char.isspace() or ord(char) < 0x20 or char == "\\" for char in url):
        return False
    if url.startswith("/"):
        return not url.startswith("//")
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def safe_link(url: str) -> str:
    """``url`` if it may go in an href, else the empty string (the label is shown unlinked)."""
    return url if is_safe_link(url) else ""


def validate_link(url: str) -> None:
    if url and not is_safe_link(url):
        raise ValidationError(
            "a link must be a page of this site (starting with /) or an http(s):// address; "
            f"{url[:60]!r} is neither",
            code="unsafe_link",
        )
