"""The expression language of `X.get_all_records_where` (XAPI's Db_filter).

Grammar: `expr := term (("and" | "or") term)*`, `term := "not" term | "(" expr ")" | "true" |
"false" | field "name" "=" "value" | "value" "=" field "name"`. Values compare as the strings
XAPI stores: booleans `true`/`false`, ints in decimal. Errors raise ValueError with the position.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_]+)|(?P<sym>[()=]))')
Predicate = Callable[[dict[str, Any]], bool]


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _tokens(expr: str) -> list[str]:
    out = []
    position = 0
    while position < len(expr.rstrip()):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise ValueError(f"cannot parse {expr!r} at character {position}")
        out.append(match.group(match.lastgroup))
        position = match.end()
    return out


def compile_where(expr: str) -> Predicate:
    tokens = _tokens(expr)
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise ValueError(f"unexpected end of {expr!r}")
        position += 1
        return tokens[position - 1]

    def literal(token: str) -> str:
        if not token.startswith('"'):
            raise ValueError(f"expected a quoted string in {expr!r}, got {token}")
        return re.sub(r"\\(.)", r"\1", token[1:-1])

    def operand() -> tuple[str, str]:
        token = take()
        if token == "field":
            return "field", literal(take())
        return "value", literal(token)

    def term() -> Predicate:
        token = peek()
        if token == "not":
            take()
            inner = term()
            return lambda r: not inner(r)
        if token == "(":
            take()
            inner = expression()
            if take() != ")":
                raise ValueError(f"missing ')' in {expr!r}")
            return inner
        if token in ("true", "false"):
            take()
            constant = token == "true"
            return lambda r: constant
        left = operand()
        if take() != "=":
            raise ValueError(f"expected '=' in {expr!r}")
        right = operand()
        if left[0] == "value":
            left, right = right, left
        if left[0] != "field" or right[0] != "value":
            raise ValueError(f"compare a field with a value in {expr!r}")
        name, wanted = left[1], right[1]
        return lambda r: name in r and _as_text(r[name]) == wanted

    def expression() -> Predicate:
        result = term()
        while peek() in ("and", "or"):
            op = take()
            left, right = result, term()
            result = (
                (lambda a, b: lambda r: a(r) and b(r))(left, right)
                if op == "and"
                else (lambda a, b: lambda r: a(r) or b(r))(left, right)
            )
        return result

    predicate = expression()
    if position != len(tokens):
        raise ValueError(f"trailing text in {expr!r}")
    return predicate
