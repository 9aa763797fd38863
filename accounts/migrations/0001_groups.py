"""Create the groups viewers, operators and administrators.

Their permissions are not set here: the permissions of the apps migrated after this one do not
exist yet. accounts.roles.sync_groups sets them after every migrate (accounts/apps.py).
"""

from django.db import migrations

GROUPS = ("viewers", "operators", "administrators")


def create_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in GROUPS:
        Group.objects.using(schema_editor.connection.alias).get_or_create(name=name)


def delete_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.using(schema_editor.connection.alias).filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_groups, delete_groups)]
