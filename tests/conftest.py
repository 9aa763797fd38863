"""Test set-up shared by every app: the fixture plugins below start real processes."""

pytest_plugins = [
    "tests.fixtures.processes",
    "tests.fixtures.xapisim",
    "tests.fixtures.pools",
    "tests.fixtures.tasks",
    "tests.fixtures.browser",
    "tests.fixtures.accounts",
]
