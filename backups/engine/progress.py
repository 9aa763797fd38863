"""How the engine reports progress without knowing who listens.

``Progress`` is the shape of ``tasks.reporter.TaskReporter`` (the Django side passes one); the
engine never imports it. ``NullProgress`` is for scripts and tests that do not watch.
Task kinds the engine uses: ``lock``, ``snapshot``, ``transfer`` (one per disk, bytes),
``commit``, ``snapshot-retention``, ``restore``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol


class Progress(Protocol):
    def subtask(
        self, name: str, *, kind: str = "", total: float | None = None
    ) -> AbstractContextManager[Progress]: ...

    def advance(self, units: float) -> None: ...

    def update(self, *, done: float | None = None, total: float | None = None) -> None: ...

    def info(self, message: str) -> None: ...

    def warning(self, message: str) -> None: ...

    def check(self) -> None:
        """Raise when the work was cancelled (the exception is the caller's, passed through)."""
        ...


class NullProgress:
    """A progress that records nothing and is never cancelled."""

    def subtask(self, name: str, *, kind: str = "", total: float | None = None) -> NullProgress:
        return self

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def advance(self, units: float) -> None:
        pass

    def update(self, *, done: float | None = None, total: float | None = None) -> None:
        pass

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        pass

    def check(self) -> None:
        pass
