"""What decides which queued executions a runner may take: its own module, so that a rule's effects can carry it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class RunnerProfile:
    """What decides which queued executions a runner may take."""

    id: uuid.UUID
    type: str | None
    labels: tuple[str, ...]
    activities: tuple[str, ...] = ()  # declared
