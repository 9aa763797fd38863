"""Pages about backup jobs, runs and restore points."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.access import requires


@requires()
def backup_overview(request: HttpRequest) -> HttpResponse:
    return render(request, "backups/overview.html")
