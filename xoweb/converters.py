"""Path converters of xoweb's URLs: ``<id:pk>`` for the id of a row.

Django's ``<int:…>`` takes any number of digits, and a number past 2**63 - 1 then fails in the
database (a 500). ``<id:…>`` matches only the ids a row can have: anything else is a 404.
"""

from __future__ import annotations

from xoweb.params import MAX_ID


class RowIdConverter:
    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= MAX_ID:
            raise ValueError(f"{value} is not a row id")  # no match: 404
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))
