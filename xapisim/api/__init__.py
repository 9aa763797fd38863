"""The XAPI methods the simulator answers, one module per area, registered by name."""

from __future__ import annotations

from . import control, events, generic, network, session, storage, tasks, vm  # noqa: F401  (registration)
from .registry import REGISTRY, Call, Method, lookup

__all__ = ["REGISTRY", "Call", "Method", "lookup"]
