"""Register the hourly reading of every remote's space (the storage outlook) with
django-celery-beat. Idempotent: run again, it finds the row and leaves it as it is."""

from django.db import migrations

NAME = "backups: read remote spaces"
TASK = "backups.tasks.read_remote_spaces"


def register(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": TASK, "interval": interval, "enabled": True}
    )


def unregister(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backups", "0006_outlook"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(register, unregister)]
