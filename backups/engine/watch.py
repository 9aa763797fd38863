"""A progress wrapper that remembers the exception the caller's progress raised.

The engine turns its own failures into a *failed* outcome, but an exception raised by the
caller's progress (a cancel: ``TaskCancelled``) must reach the caller unchanged once the
engine has cleaned up. ``Watched`` passes every call through and notes such an exception, so
that ``stopped(error)`` tells the two apart.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from .progress import Progress


class _State:
    def __init__(self) -> None:
        self.raised: list[BaseException] = []


class Watched:
    def __init__(self, inner: Progress, state: _State | None = None) -> None:
        self.inner = inner
        self.state = state or _State()

    def stopped(self, error: BaseException) -> bool:
        """Was ``error`` raised by the caller's progress?"""
        return any(error is raised for raised in self.state.raised)

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.inner, name)(*args, **kwargs)
        except BaseException as error:
            self.state.raised.append(error)
            raise

    def subtask(self, name: str, *, kind: str = "", total: float | None = None) -> _WatchedTask:
        return _WatchedTask(self._call("subtask", name, kind=kind, total=total), self.state)

    def advance(self, units: float) -> None:
        self._call("advance", units)

    def update(self, *, done: float | None = None, total: float | None = None) -> None:
        self._call("update", done=done, total=total)

    def info(self, message: str) -> None:
        self._call("info", message)

    def warning(self, message: str) -> None:
        self._call("warning", message)

    def check(self) -> None:
        self._call("check")


class _WatchedTask:
    def __init__(self, manager: AbstractContextManager[Progress], state: _State) -> None:
        self.manager = manager
        self.state = state

    def __enter__(self) -> Watched:
        try:
            return Watched(self.manager.__enter__(), self.state)
        except BaseException as error:
            self.state.raised.append(error)
            raise

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self.manager.__exit__(*exc_info)
        except BaseException as error:
            self.state.raised.append(error)
            raise
