from django.urls import path

from backups.views import checks, jobs, overview, points, remotes, restore_wizard, runs

app_name = "backups"
urlpatterns = [
    path("backups/", overview.backup_overview, name="overview"),
    path("backups/remotes/", remotes.remote_list, name="remote_list"),
    path("backups/remotes/add/", remotes.remote_add, name="remote_add"),
    path("backups/remotes/<id:pk>/", remotes.remote_detail, name="remote_detail"),
    path("backups/remotes/<id:pk>/edit/", remotes.remote_edit, name="remote_edit"),
    path("backups/remotes/<id:pk>/delete/", remotes.remote_delete, name="remote_delete"),
    path("backups/remotes/<id:pk>/check/", remotes.remote_check, name="remote_check"),
    path("backups/remotes/<id:pk>/clean/", remotes.remote_clean, name="remote_clean"),
    path("backups/remotes/<id:pk>/verify/", checks.remote_verify, name="remote_verify"),
    path("backups/jobs/", jobs.job_list, name="job_list"),
    path("backups/jobs/add/", jobs.job_add, name="job_add"),
    path("backups/jobs/plan/", jobs.job_plan, name="job_plan_new"),
    path("backups/jobs/<id:pk>/", jobs.job_detail, name="job_detail"),
    path("backups/jobs/<id:pk>/plan/", jobs.job_plan, name="job_plan"),
    path("backups/jobs/<id:pk>/edit/", jobs.job_edit, name="job_edit"),
    path("backups/jobs/<id:pk>/delete/", jobs.job_delete, name="job_delete"),
    path("backups/jobs/<id:pk>/run/", jobs.job_run, name="job_run"),
    path("backups/runs/", runs.run_list, name="run_list"),
    path("backups/jobs/<id:pk>/prune/", jobs.job_prune, name="job_prune"),
    path("backups/runs/<id:pk>/", runs.run_detail, name="run_detail"),
    path("backups/runs/<id:pk>/cancel/", runs.run_cancel, name="run_cancel"),
    path("backups/runs/<id:pk>/json/", runs.run_detail_json, name="run_detail_json"),
    path("backups/points/", points.point_list, name="point_list"),
    path("backups/vms/<str:vm_uuid>/", points.vm_points, name="vm_points"),
    path(
        "backups/vms/<str:vm_uuid>/restore/", restore_wizard.restore_wizard, name="restore_wizard"
    ),
    path(
        "backups/vms/<str:vm_uuid>/restore/confirm/",
        restore_wizard.restore_wizard_confirm,
        name="restore_wizard_confirm",
    ),
    path("backups/points/<id:pk>/", checks.point_detail, name="point_detail"),
    path("backups/points/<id:pk>/restore/", points.point_restore, name="point_restore"),
    path("backups/points/<id:pk>/verify/", checks.point_verify, name="point_verify"),
    path(
        "backups/points/<id:pk>/health-check/",
        checks.point_health_check,
        name="point_health_check",
    ),
    path(
        "backups/verifications/<id:pk>/",
        checks.verification_detail,
        name="verification_detail",
    ),
    path(
        "backups/health-checks/<id:pk>/",
        checks.health_check_detail,
        name="health_check_detail",
    ),
    path("backups/restores/<id:pk>/", points.restore_detail, name="restore_detail"),
    path(
        "backups/restores/<id:pk>/download/",
        restore_wizard.restore_download,
        name="restore_download",
    ),
]
