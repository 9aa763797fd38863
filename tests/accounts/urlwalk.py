"""Every URL of xoweb, found by walking the resolver (never listed by hand), with a path to it.

A URL added later by any app is found here too, so the tests that use this cover it by
themselves.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

#: Values tried for each parameter of a URL until the path resolves back to the same pattern.
SAMPLES = ("1", "x", "auth", "00000000-0000-0000-0000-000000000001")


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the route itself when unnamed
    path: str  # a concrete path that resolves to this route
    callback: Callable

    @property
    def is_admin(self) -> bool:
        """Django admin's own views, which check staff status and model permissions."""
        return self.path.startswith("/admin/")


def _walk(patterns, prefix: str, namespace: str) -> Iterator[tuple[str, str, URLPattern]]:
    for pattern in patterns:
        regex = prefix + pattern.pattern.regex.pattern.lstrip("^").rstrip("$").removesuffix("\\Z")
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, regex, inner)
        else:
            yield regex, namespace, pattern


def _concrete(regex: str, pattern: URLPattern) -> str | None:
    """A path matching ``regex`` that resolves to ``pattern`` (parameters filled by samples)."""
    import re

    from django.utils.regex_helper import normalize

    for template, params in normalize("^" + regex):
        for values in itertools.product(SAMPLES, repeat=len(params)):
            path = "/" + template % dict(zip(params, values, strict=True))
            if not re.fullmatch(regex, path[1:]):
                continue
            try:
                match = resolve(path)
            except Resolver404:
                continue
            if match.func is pattern.callback or match.url_name == pattern.name:
                return path
    return None


def every_route() -> list[Route]:
    routes = []
    for regex, namespace, pattern in _walk(get_resolver().url_patterns, "", ""):
        path = _concrete(regex, pattern)
        assert path is not None, f"no concrete path found for the URL pattern {regex!r}"
        name = f"{namespace}{pattern.name}" if pattern.name else regex
        routes.append(Route(name, path, pattern.callback))
    return routes
