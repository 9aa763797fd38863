from django.urls import path

from pools import views

app_name = "pools"
urlpatterns = [
    path("pools/", views.pool_list, name="pool_list"),
    path("vms/", views.vm_list, name="vm_list"),
]
