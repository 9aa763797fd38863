from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path

from xoweb import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("favicon.ico", login_not_required(views.FaviconView.as_view()), name="favicon"),
    path("admin/", admin.site.urls),
    path("", include("pools.urls")),
    path("", include("backups.urls")),
    path("", include("tasks.urls")),
]
