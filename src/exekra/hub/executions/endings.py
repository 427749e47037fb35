"""What clients wait for in an execution, in any hub process: its end (`GET /api/executions/{id}?wait=N`,
the log stream's `end` event) and new log lines (the log stream).

A waiting client registers here, then looks at the execution and, while it has not ended, marks it as awaited,
in one statement (`queries.await_end`). The statement that ends a marked execution announces it on `CHANNEL` (the
`ends` effect), and each hub process's `Listener` hears it, the ending process's own included. An execution
nobody waits for sends no notification: each one costs every listening hub process a transaction of PostgreSQL's.
A runner's end report in this process hands the ended row to this process's waiters (`hand`): they answer without
reading it.
A log upload with lines announces them on the execution's own channel (`log_channel`), which a hub process
listens to only while someone follows that execution's log: nobody else receives those notifications.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from exekra.hub.listener import Listener
from exekra.hub.waiters import Signal, Waiters

if TYPE_CHECKING:
    from exekra.hub.lifecycle import Ended

CHANNEL = "exekra_finished"  # payload: the execution id
LOG_CHANNEL_PREFIX = "exekra_logs_"  # + the execution id in hex: 44 characters, within PostgreSQL's 63


def log_channel(execution_id: uuid.UUID) -> str:
    """The channel on which new log lines of the execution are announced."""
    return LOG_CHANNEL_PREFIX + execution_id.hex


class Endings(Waiters):
    """This process's clients waiting for an execution to end, by execution id."""

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        self._ended: dict[uuid.UUID, Ended] = {}
        listener.subscribe(CHANNEL, self.deliver_key, on_connect=self.notify_all)

    def hand(self, ended: Ended) -> None:
        """An execution this process just ended, as the committed ending statement returned it: its waiters here
        take it (`ended`) instead of reading it again. The announcement still comes, for other processes; a waiter
        it wakes first reads, as one in another process does."""
        key = ended.execution.id
        if self.is_waiting(key):
            self._ended[key] = ended
            self.notify(key)

    def ended(self, key: uuid.UUID) -> Ended | None:
        """The ended execution handed to this key's waiters, if it was."""
        return self._ended.get(key)

    def unregister(self, key: uuid.UUID, signal: Signal) -> None:
        super().unregister(key, signal)
        if not self.is_waiting(key):
            self._ended.pop(key, None)
