"""The address that login throttling counts failures against (django-axes).

Directly, it is the peer's address. Behind the HTTPS reverse proxy (``XOWEB_HTTPS=1``) the peer
is the proxy, so every person would share one count: the address is then the last entry of
X-Forwarded-For, the one the proxy itself appended (entries before it are the client's word and
can be forged). docs/security.md §Login throttling.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    peer = request.META.get("REMOTE_ADDR", "")
    if not settings.HTTPS:
        return peer
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(forwarded))
    except ValueError:
        return peer
