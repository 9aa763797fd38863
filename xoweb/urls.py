"""Every URL of xoweb. Each view needs a login and declares its permissions
(accounts/access.py): only the login pages, the health check, the favicon's redirect and static
files (served before the URLs, by WhiteNoise) are open (docs/security.md §Logins)."""

from django.contrib import admin
from django.urls import include, path

from accounts.access import public
from xoweb import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("health/", views.health, name="health"),
    path("favicon.ico", public(views.FaviconView.as_view()), name="favicon"),
    path("", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("", include("pools.urls")),
    path("", include("backups.urls")),
    path("", include("tasks.urls")),
]

handler400 = "xoweb.errors.bad_request"
