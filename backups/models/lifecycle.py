"""What the pages and services read of a row that is worked on once — a run, a VM backup, a
restore, a verification, a restore test: its badge, whether it ended, how long it took."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from backups.choices import STATUS_CSS


class Lifecycle:
    """Mixed into the models with a ``status`` (of the choices named by ``statuses``, which
    have a ``final()``) and ``started``/``ended`` moments."""

    statuses: ClassVar[type]
    status: str
    started: datetime | None
    ended: datetime | None

    @property
    def css(self) -> str:
        """The badge class of its status (``ok``, ``warn``, ``bad`` or "")."""
        return STATUS_CSS.get(self.status, "")

    @property
    def is_final(self) -> bool:
        return self.status in self.statuses.final()

    @property
    def duration(self) -> timedelta | None:
        if self.started and self.ended:
            return self.ended - self.started
        return None
