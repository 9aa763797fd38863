"""Method registry: name -> implementation, with the arity XAPI checks and whether an `Async.`
twin exists. Implementations take a `Call` (who is calling, on which host) and the XAPI params
after the session."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..pool import Simulator


@dataclass
class Call:
    """The context of one API call."""

    sim: Simulator
    host: str  # the host ref whose server received the call
    session: str | None
    method: str
    task: str | None = None  # the task an `Async.` call runs as
    connection: Any = None  # the client socket, so the simulator can cut it on purpose

    @property
    def db(self):
        return self.sim.db


@dataclass
class Method:
    name: str
    fn: Callable[..., Any]
    session: bool
    asyncable: bool
    listed: bool
    required: int
    total: int


REGISTRY: dict[str, Method] = {}
_LOWER: dict[str, Method] = {}


def register(
    name: str,
    fn: Callable[..., Any],
    *,
    session: bool = True,
    asyncable: bool = False,
    listed: bool = True,
) -> None:
    parameters = list(inspect.signature(fn).parameters.values())[1:]  # after the Call
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        required, total = 0, 1 << 30
    else:
        required = sum(1 for p in parameters if p.default is p.empty)
        total = len(parameters)
    method = Method(name, fn, session, asyncable, listed, required, total)
    REGISTRY[name] = method
    _LOWER[name.lower()] = method


def api(
    name: str, *, session: bool = True, asyncable: bool = False, listed: bool = True
) -> Callable:
    """Decorator form of `register`."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        register(name, fn, session=session, asyncable=asyncable, listed=listed)
        return fn

    return decorate


def lookup(name: str) -> Method | None:
    """XAPI matches class names case-insensitively (`vm.get_all_records` works too)."""
    return REGISTRY.get(name) or _LOWER.get(name.lower())
