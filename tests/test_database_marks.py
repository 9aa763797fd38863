"""The suite refuses to run a test that uses the database without the django_db mark."""

from __future__ import annotations

import pytest

from tests.conftest import pytest_collection_modifyitems, unmarked_database_tests


class FakeItem:
    def __init__(self, nodeid: str, fixtures: list[str], marked: bool) -> None:
        self.nodeid, self.fixturenames, self.marked = nodeid, fixtures, marked

    def get_closest_marker(self, name: str):
        return object() if self.marked and name == "django_db" else None


def test_a_test_using_the_database_through_a_process_without_the_mark_stops_the_run():
    items = [
        FakeItem("test_pure", ["tmp_path"], marked=False),
        FakeItem("test_marked", ["start_celery_worker", "transactional_db"], marked=True),
        FakeItem("test_forgot", ["start_watcher", "transactional_db", "tmp_path"], marked=False),
        FakeItem("test_page", ["live_server"], marked=False),
    ]
    assert unmarked_database_tests(items) == ["test_forgot", "test_page"]
    with pytest.raises(pytest.UsageError, match=r"lack the django_db mark[\s\S]*test_forgot"):
        pytest_collection_modifyitems(None, items)


def test_every_collected_test_passed_the_check(request):
    # The hook ran on this very session before any test: had a mark been missing, nothing
    # would have run. Check the live items too, in case the hook were ever unregistered.
    assert unmarked_database_tests(request.session.items) == []
