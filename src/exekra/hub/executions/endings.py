"""What clients wait for in an execution, in any hub process: its end (`GET /api/executions/{id}?wait=N`,
the log stream's `end` event) and new log lines (the log stream).

A waiting client registers here, then looks at the execution and, while it has not ended, marks it as awaited,
in one statement (`queries.await_end`). The statement that ends a marked execution announces it on `CHANNEL` (the
`ends` effect), and each hub process's `Listener` hears it, the ending process's own included. An execution
nobody waits for sends no notification: each one costs every listening hub process a transaction of PostgreSQL's.
A log upload with lines announces them on the execution's own channel (`log_channel`), which a hub process
listens to only while someone follows that execution's log: nobody else receives those notifications.
"""

from __future__ import annotations

import uuid

from exekra.hub.listener import Listener
from exekra.hub.waiters import Waiters

CHANNEL = "exekra_finished"  # payload: the execution id
LOG_CHANNEL_PREFIX = "exekra_logs_"  # + the execution id in hex: 44 characters, within PostgreSQL's 63


def log_channel(execution_id: uuid.UUID) -> str:
    """The channel on which new log lines of the execution are announced."""
    return LOG_CHANNEL_PREFIX + execution_id.hex


class Endings(Waiters):
    """This process's clients waiting for an execution to end, by execution id."""

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        listener.subscribe(CHANNEL, self.deliver_key, on_connect=self.notify_all)
