"""A permission for every action: the groups, what each may do, the buttons each sees."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.urls import reverse

from accounts.roles import ADMINISTRATORS, GROUPS, OPERATORS, VIEWERS, holds
from pools.models import Pool
from tasks.models import Task
from tests.accounts.urlwalk import every_route

pytestmark = pytest.mark.django_db

ROUTES = [route for route in every_route() if not route.is_admin]


def permissions_of(group: str) -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=group).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def is_action(route) -> bool:
    needed = getattr(route.callback, "required_permissions", ())
    return any(".view_" not in permission for permission in needed)


def test_the_data_migration_and_the_sync_give_each_group_its_rows_of_the_table():
    assert set(Group.objects.values_list("name", flat=True)) >= set(GROUPS)
    viewers, operators, administrators = (permissions_of(group) for group in GROUPS)

    assert {"pools.view_pool", "pools.view_vm", "tasks.view_task"} <= viewers
    assert "django_celery_beat.view_periodictask" in viewers
    assert all(".view_" in permission for permission in viewers)
    assert operators - viewers == {
        "tasks.cancel_task",
        "pools.cancel_xapitask",
        "backups.run_backupjob",
        "backups.restore_restorepoint",
        "backups.verify_restorepoint",
    }
    assert {"pools.add_pool", "pools.change_pool", "pools.delete_pool"} <= administrators
    assert operators < administrators
    assert not any(p.startswith(("auth.", "axes.", "tasks.delete")) for p in administrators)


def test_permissions_of_models_added_later_join_the_right_groups_at_the_next_migrate():
    """A model added to the backups app later (here a made-up "auditentry") gets its rows by
    the patterns alone, at the next migrate."""
    later = ContentType.objects.create(app_label="backups", model="auditentry")
    for codename in ("view_auditentry", "add_auditentry", "delete_auditentry"):
        Permission.objects.create(content_type=later, codename=codename, name=codename)

    call_command("migrate", verbosity=0)  # nothing to migrate: the post_migrate sync still runs

    assert "backups.view_auditentry" in permissions_of(VIEWERS)
    assert "backups.add_auditentry" not in permissions_of(OPERATORS)
    assert {"backups.add_auditentry", "backups.delete_auditentry"} <= permissions_of(ADMINISTRATORS)
    assert holds(OPERATORS, "backups.restore_restorepoint")
    assert not holds(VIEWERS, "backups.restore_restorepoint")


def test_a_viewer_gets_403_on_every_action_and_reads_every_page(client_as, make_task):
    make_task("a task")
    viewer = client_as(VIEWERS)
    refused, unreadable = [], []
    for route in ROUTES:
        if not hasattr(route.callback, "required_permissions"):
            continue  # the public views
        if is_action(route):
            response = viewer.post(route.path)
            if response.status_code != 403 or "may not do this" not in response.content.decode(
                errors="replace"
            ):
                refused.append(f"{route.name}: {response.status_code}")
        elif "GET" in route.callback.allowed_methods and viewer.get(route.path).status_code not in (
            200,
            404,
        ):
            unreadable.append(route.name)
    assert refused == [], "a viewer was not refused:\n" + "\n".join(refused)
    assert unreadable == [], f"a viewer could not read: {unreadable}"


def test_a_user_without_a_group_sees_nothing_and_is_told_why(client_as, make_user):
    nobody = client_as(make_user("nobody", staff=True))
    pools = nobody.get(reverse("pools:pool_list"))
    assert pools.status_code == 403
    assert "it needs the permission pools.view_pool" in pools.content.decode()
    assert nobody.post(reverse("pools:pool_add"), {"name": "x"}).status_code == 403
    dashboard = nobody.get(reverse("dashboard")).content.decode()
    assert "may not see anything yet" in dashboard
    json_refusal = nobody.get(reverse("tasks:task_list_json"))
    assert json_refusal.status_code == 403
    assert "tasks.view_task" in json_refusal.json()["error"]


def test_an_operator_cancels_tasks_but_cannot_touch_a_pool(client_as, make_task, pool_row):
    operator = client_as(OPERATORS)
    pool = pool_row("lab")
    slow = make_task("slow", cancellable=True)

    assert operator.post(reverse("tasks:task_cancel", args=[slow.pk])).status_code == 302
    assert Task.objects.get(pk=slow.pk).cancel_requested
    assert operator.get(reverse("pools:pool_edit", args=[pool.pk])).status_code == 403
    assert operator.post(reverse("pools:pool_edit", args=[pool.pk]), {}).status_code == 403
    assert operator.post(reverse("pools:pool_delete", args=[pool.pk])).status_code == 403
    assert operator.get(reverse("pools:pool_add")).status_code == 403
    assert Pool.objects.filter(pk=pool.pk).exists()


def test_an_administrator_does_all(client, make_task, pool_row):
    pool = pool_row("lab")
    slow = make_task("slow", cancellable=True)
    assert client.get(reverse("pools:pool_add")).status_code == 200
    assert client.get(reverse("pools:pool_edit", args=[pool.pk])).status_code == 200
    assert client.post(reverse("tasks:task_cancel", args=[slow.pk])).status_code == 302
    assert client.post(reverse("pools:pool_delete", args=[pool.pk])).status_code == 302
    assert not Pool.objects.filter(pk=pool.pk).exists()
    # Actions are POST only: a link cannot delete anything.
    other = pool_row("other")
    assert client.get(reverse("pools:pool_delete", args=[other.pk])).status_code == 405


@pytest.mark.parametrize(
    ("group", "shown", "hidden"),
    [
        (VIEWERS, [], ["Remove this pool", ">Edit<", "Cancel</button>", "Add a pool"]),
        (OPERATORS, ["Cancel</button>"], ["Remove this pool", ">Edit<", "Add a pool"]),
        (ADMINISTRATORS, ["Remove this pool", ">Edit<", "Cancel</button>", "Add a pool"], []),
    ],
)
def test_pages_show_only_the_buttons_the_user_may_use(
    client_as, pool_row, make_task, group, shown, hidden
):
    pool = pool_row("lab")
    make_task("slow", cancellable=True)
    user = client_as(group)
    pages = "".join(
        user.get(url).content.decode()
        for url in (
            reverse("pools:pool_detail", args=[pool.pk]),
            reverse("pools:pool_list"),
            reverse("tasks:task_list"),
        )
    )
    for text in shown:
        assert text in pages, f"{group} should see {text!r}"
    for text in hidden:
        assert text not in pages, f"{group} should not see {text!r}"


def test_ensure_admin_keeps_making_a_superuser(run_manage, tmp_path, django_user_model):
    done = run_manage("ensure_admin", XOWEB_VAR_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password((tmp_path / "admin_password").read_text().strip())
    again = run_manage("ensure_admin", XOWEB_VAR_DIR=str(tmp_path))
    assert "An admin user exists" in again.stdout
    assert django_user_model.objects.filter(is_superuser=True).count() == 1
