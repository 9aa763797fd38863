"""The three groups of xoweb and the one table that says which permissions each holds.

Each group holds what the groups before it hold, plus its own rows of :data:`RULES`:

* viewers: read everything (every ``view_*`` of pools, backups, tasks and django-celery-beat);
* operators: also cancel xoweb and XAPI tasks, run backup jobs, restore, verify backups and
  run restore tests;
* administrators: also add, change and delete pools and the backup models.

The rules are patterns (``fnmatch`` on ``app_label.codename``), so a model added later (a
remote, a job, a schedule…) joins the right groups by itself: the sync runs after every
``migrate`` (and every test database flush), once the permissions of every app exist. The table
is the truth: permissions given to a group by hand are taken away at the next sync; give them to
the user instead. The table is shown in docs/security.md §Permissions.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

VIEWERS = "viewers"
OPERATORS = "operators"
ADMINISTRATORS = "administrators"

#: The groups, from the least to the most trusted.
GROUPS = (VIEWERS, OPERATORS, ADMINISTRATORS)

#: (permission pattern, the least trusted group that holds it).
RULES: tuple[tuple[str, str], ...] = (
    ("pools.view_*", VIEWERS),
    ("backups.view_*", VIEWERS),
    ("tasks.view_*", VIEWERS),
    ("django_celery_beat.view_*", VIEWERS),
    ("tasks.cancel_task", OPERATORS),
    ("pools.cancel_xapitask", OPERATORS),
    ("backups.run_backupjob", OPERATORS),
    ("backups.restore_restorepoint", OPERATORS),
    ("backups.verify_restorepoint", OPERATORS),
    ("pools.add_*", ADMINISTRATORS),
    ("pools.change_*", ADMINISTRATORS),
    ("pools.delete_*", ADMINISTRATORS),
    ("backups.add_*", ADMINISTRATORS),
    ("backups.change_*", ADMINISTRATORS),
    ("backups.delete_*", ADMINISTRATORS),
)


def patterns_of(group: str) -> list[str]:
    """The permission patterns ``group`` holds: its own rows and those of the groups before it."""
    rank = GROUPS.index(group)
    return [pattern for pattern, holder in RULES if GROUPS.index(holder) <= rank]


def holds(group: str, permission: str) -> bool:
    """Whether ``group`` holds ``permission`` (``app_label.codename``) by the table."""
    return any(fnmatchcase(permission, pattern) for pattern in patterns_of(group))


def sync_groups(apps=None, using: str = "default") -> dict[str, int]:
    """Create the groups if missing and set each one's permissions to what the table says.

    Steps: read every permission once (with its app label); for each group, keep those that
    match its patterns; replace the group's permissions with them. Returns the count per group.
    ``apps`` is the app registry of a migration or a post_migrate signal (the global one if None).
    """
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    everything = [
        (f"{app_label}.{codename}", pk)
        for pk, app_label, codename in permission_model.objects.using(using).values_list(
            "pk", "content_type__app_label", "codename"
        )
    ]
    counts = {}
    for name in GROUPS:
        group, _ = group_model.objects.using(using).get_or_create(name=name)
        wanted = [pk for permission, pk in everything if holds(name, permission)]
        group.permissions.set(wanted)
        counts[name] = len(wanted)
    return counts
