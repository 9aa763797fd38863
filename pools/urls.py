from django.urls import path

from pools import views

app_name = "pools"
urlpatterns = [
    path("pools/", views.pool_list, name="pool_list"),
    path("pools/add/", views.pool_add, name="pool_add"),
    path("pools/<id:pk>/", views.pool_detail, name="pool_detail"),
    path("pools/<id:pk>/edit/", views.pool_edit, name="pool_edit"),
    path("pools/<id:pk>/delete/", views.pool_delete, name="pool_delete"),
    path("vms/", views.vm_list, name="vm_list"),
]
