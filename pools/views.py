"""Pages about pools and their VMs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def pool_list(request: HttpRequest) -> HttpResponse:
    return render(request, "pools/pool_list.html")


def vm_list(request: HttpRequest) -> HttpResponse:
    return render(request, "pools/vm_list.html")
