from django.urls import path

from backups import views

app_name = "backups"
urlpatterns = [
    path("backups/", views.backup_overview, name="overview"),
]
