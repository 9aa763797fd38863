from django.urls import path

from tasks import views

app_name = "tasks"
urlpatterns = [
    path("tasks/", views.task_list, name="task_list"),
    path("tasks/api/", views.task_list_json, name="task_list_json"),
    path("tasks/<id:pk>/", views.task_detail, name="task_detail"),
    path("tasks/<id:pk>/json/", views.task_detail_json, name="task_detail_json"),
    path("tasks/<id:pk>/cancel/", views.task_cancel, name="task_cancel"),
    path("tasks/xapi/<id:pk>/", views.xapi_task_detail, name="xapi_task_detail"),
    path("tasks/xapi/<id:pk>/cancel/", views.xapi_task_cancel, name="xapi_task_cancel"),
]
