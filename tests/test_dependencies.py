"""Two locks: the service's (what `make run` and production install) and what the tests add.

Production gets no test runner, browser driver or linter; each lock pins every package the
other does not, within pyproject.toml's ranges; and the service's lock is complete on its own
(every dependency of a locked package is locked too), so installing it alone gives a service
that runs.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = {"pytest", "pytest-django", "pytest-timeout", "playwright", "hypothesis", "ruff"}


def lock(name: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            package, version = line.split("==")
            pins[canonicalize_name(package)] = version
    return pins


def declared(group: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    raw = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return [Requirement(line) for line in raw]


def dependencies_of(package: str) -> set[str]:
    """The packages ``package`` needs (extras it was asked for in the locks excepted)."""
    needed = set()
    for line in importlib.metadata.requires(package) or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            needed.add(canonicalize_name(requirement.name))
    return needed


def test_production_installs_no_test_tool():
    service = lock("requirements.lock")
    assert not TEST_TOOLS & set(service)
    assert set(lock("requirements-test.lock")) >= TEST_TOOLS
    assert not set(service) & set(lock("requirements-test.lock"))


def test_every_declared_dependency_is_pinned_within_its_range():
    for requirements, pins in (
        (declared(), lock("requirements.lock")),
        (declared("test"), lock("requirements-test.lock")),
    ):
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{name} is declared but not locked"
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"{name}=={pins[name]} is outside {requirement.specifier}"
            )


def test_the_service_lock_is_complete_on_its_own_and_with_the_tests():
    service = lock("requirements.lock")
    # The extras the service asks for (celery[redis], psycopg[binary]) are locked by name.
    for name in service:
        missing = dependencies_of(name) - set(service)
        assert not missing, f"{name} needs {missing}, which production would not install"
    both = service | lock("requirements-test.lock")
    for name in both:
        assert not dependencies_of(name) - set(both), name


def test_make_run_installs_the_service_lock_and_make_test_adds_the_other():
    def planned(target: str) -> str:
        done = subprocess.run(
            ["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run = planned("run")
    assert "pip install -q -r requirements.lock" in run
    assert "requirements-test.lock" not in run
    assert "-r requirements-test.lock" in planned("test-setup")
