from django.contrib import admin
from django.urls import include, path

from xoweb import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("admin/", admin.site.urls),
    path("", include("pools.urls")),
    path("", include("backups.urls")),
    path("", include("tasks.urls")),
]
