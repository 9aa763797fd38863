"""A throwaway xoweb site for the benchmarks: Django on a temporary folder and SQLite database,
and its pages timed with the number of SQL queries they make.

Used by the benchmark scripts beside it (run as ``python benchmarks/bench_….py``, which puts
this folder on ``sys.path``); imports Django only once the site is set up.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def throwaway_site(prefix: str) -> Iterator[Path]:
    """Set Django up on a new temporary folder (migrated database, test client host allowed);
    yields the folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        var_dir = Path(tmp)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xoweb.settings")
        os.environ["XOWEB_VAR_DIR"] = str(var_dir)
        os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        settings.ALLOWED_HOSTS = ["testserver"]
        yield var_dir


def time_pages(
    paths: list[str], *, rounds: int = 7, warm_up: bool = False
) -> dict[str, tuple[float, int]]:
    """``{path: (median seconds, queries)}`` of ``rounds`` GETs of each path by the test client,
    logged in.

    Every response must be a 200; the query count is the last round's. With ``warm_up``, each
    path is fetched once, untimed, before its rounds.
    """
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    # Every page needs a login (docs/security.md): the pages are timed as an administrator sees
    # them, the login's own queries included.
    viewer, _ = get_user_model().objects.get_or_create(
        username="bench", defaults={"is_superuser": True, "is_staff": True}
    )
    client = Client()
    client.force_login(viewer)
    timings = {}
    for path in paths:
        if warm_up:
            client.get(path)
        samples = []
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(path)
                samples.append(time.perf_counter() - started)
            assert response.status_code == 200, f"{path}: {response.status_code}"
        timings[path] = (statistics.median(samples), len(queries.captured_queries))
    return timings
