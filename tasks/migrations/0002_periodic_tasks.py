"""Register the periodic tasks of the tasks app with django-celery-beat (beat runs them).

* ``tasks.mark_interrupted`` every 30 s: running tasks whose process died become interrupted.
* ``tasks.prune_finished`` every hour: finished trees older than TASK_RETENTION_DAYS go.
"""

from django.db import migrations

PERIODIC = [
    ("tasks: mark interrupted tasks", "tasks.mark_interrupted", 30, "seconds"),
    ("tasks: prune finished tasks", "tasks.prune_finished", 1, "hours"),
]


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, every, period in PERIODIC:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.update_or_create(
            name=name, defaults={"task": task, "interval": interval, "enabled": True}
        )


def unregister(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in PERIODIC]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tasks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
