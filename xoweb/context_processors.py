"""Values every page needs: links to the interfaces that are not Django views."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def links(request: HttpRequest) -> dict[str, str]:
    return {"flower_url": settings.FLOWER_URL}
