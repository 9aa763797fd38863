"""Every URL of xoweb. Each view needs a login and declares its permissions
(accounts/access.py): only the login page, the health check and static files (served before
the URLs, by WhiteNoise) are open."""

from django.contrib import admin
from django.urls import include, path

from xoweb import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("health/", views.health, name="health"),
    path("", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("", include("pools.urls")),
    path("", include("backups.urls")),
    path("", include("tasks.urls")),
]

handler400 = "xoweb.errors.bad_request"
