"""Method registry: name -> implementation, with the arity XAPI checks and whether an `Async.`
twin exists. Implementations take a `Call` (who is calling, on which host) and the XAPI params
after the session.

Arity follows XAPI's generated dispatcher (docs/xapi.md §8.9): a method without defaulted
parameters takes exactly its parameters; one with defaulted trailing parameters (`defaulted=True`,
the Python defaults marking them) takes its required ones and any number more, extras ignored.
A parameter that appeared in a later xapi release (`since={"ignore_vdis": (21, 4, 0)}`) does not
exist on an older simulated pool. `sim.` methods are ours: they take their Python arity.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import XapiError

if TYPE_CHECKING:
    from ..pool import Simulator

Version = tuple[int, ...]


def parse_version(text: str) -> tuple[int, ...]:
    """`21.3.0` -> (21, 3, 0); ValueError naming the problem otherwise."""
    parts = str(text).strip().split(".")
    if not 1 <= len(parts) <= 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"version {text!r} is not like 21.4.0 (one to three numbers)")
    return tuple(int(part) for part in parts)


def version_text(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


@dataclass
class Call:
    """The context of one API call."""

    sim: Simulator
    host: str  # the host ref whose server received the call
    session: str | None
    method: str
    task: str | None = None  # the task the call runs as (`Async.`, or a VM operation's own)
    connection: Any = None  # the client socket, so the simulator can cut it on purpose
    is_async: bool = False

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
    params: list[str]
    required: int
    defaulted: bool = False
    since: dict[str, Version] = field(default_factory=dict)
    varargs: bool = False

    @property
    def total(self) -> int:
        return len(self.params)

    def check_arity(self, called: str, received: int, version: Version) -> None:
        """Raise MESSAGE_PARAMETER_COUNT_MISMATCH [called, expected, received] as XAPI would
        for a pool of xapi `version`."""
        if self.varargs:
            return
        if self.name.startswith("sim."):
            if not self.required <= received <= self.total:
                raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", called, self.total, received)
            return
        # Parameters newer than the pool do not exist; they are always trailing ones.
        present = [p for p in self.params if self.since.get(p, ()) <= version]
        defaulted = self.defaulted and len(present) > self.required
        if defaulted:
            if received < self.required:
                raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", called, self.required, received)
        elif received != len(present):
            raise XapiError("MESSAGE_PARAMETER_COUNT_MISMATCH", called, len(present), received)

    def accepted(self, args: list[Any], version: Version) -> list[Any]:
        """The arguments the implementation gets: extra trailing ones dropped (XAPI ignores
        them), and on an older pool none for parameters it does not have."""
        if self.varargs or self.name.startswith("sim."):
            return args
        present = sum(1 for p in self.params if self.since.get(p, ()) <= version)
        return args[:present]


REGISTRY: dict[str, Method] = {}
_LOWER: dict[str, Method] = {}


def register(
    name: str,
    fn: Callable[..., Any],
    *,
    session: bool = True,
    asyncable: bool = False,
    listed: bool = True,
    defaulted: bool = False,
    since: dict[str, Version] | None = None,
) -> None:
    parameters = list(inspect.signature(fn).parameters.values())[1:]  # after the Call
    varargs = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    names = [p.name for p in parameters if p.kind is not p.VAR_POSITIONAL]
    if name.startswith("sim.") or defaulted:
        required = sum(1 for p in parameters if p.default is p.empty and p.name in names)
    else:
        required = len(names)
    method = Method(
        name, fn, session, asyncable, listed, names, required, defaulted, since or {}, varargs
    )
    REGISTRY[name] = method
    _LOWER[name.lower()] = method


def api(
    name: str,
    *,
    session: bool = True,
    asyncable: bool = False,
    listed: bool = True,
    defaulted: bool = False,
    since: dict[str, Version] | None = None,
) -> Callable:
    """Decorator form of `register`."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        register(
            name,
            fn,
            session=session,
            asyncable=asyncable,
            listed=listed,
            defaulted=defaulted,
            since=since,
        )
        return fn

    return decorate


def lookup(name: str) -> Method | None:
    """XAPI matches class names case-insensitively (`vm.get_all_records` works too)."""
    return REGISTRY.get(name) or _LOWER.get(name.lower())
