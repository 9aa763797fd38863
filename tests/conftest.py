"""Test set-up shared by every app: the fixture plugins below start real processes.

Every test that uses the database, directly or through a real process (a Celery worker, the
watcher, ``manage.py``, the live server), must carry the ``django_db`` mark: ``make test`` runs
the database tests a second time on PostgreSQL by selecting that mark (``-m django_db``), so an
unmarked one would silently never run there. The hook below refuses to run the suite while any
test lacks it, naming them.
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.xapisim",
    "tests.fixtures.pools",
    "tests.fixtures.tasks",
    "tests.fixtures.browser",
    "tests.fixtures.accounts",
    "tests.fixtures.mail",
    "tests.fixtures.xdist_groups",
]

#: pytest-django's fixtures that open the test database; any fixture built on them (``client``
#: with a login, ``start_celery_worker``, ``run_manage``…) requests them too.
DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
    "live_server",
}


def unmarked_database_tests(items: list[pytest.Item]) -> list[str]:
    """Tests that use the database without the ``django_db`` mark."""
    return [
        item.nodeid
        for item in items
        if DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        and item.get_closest_marker("django_db") is None
    ]


@pytest.hookimpl(tryfirst=True)  # before `-m django_db` deselects anything
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = unmarked_database_tests(items)
    if unmarked:
        raise pytest.UsageError(
            "these tests use the database (directly or through a process they start) but lack "
            "the django_db mark, so they would never run on PostgreSQL (make test runs "
            "-m django_db there): mark them with pytest.mark.django_db (transaction=True when "
            "another process must see their rows)\n  " + "\n  ".join(unmarked)
        )
