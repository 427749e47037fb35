"""Clients waiting for an execution to end (`GET /api/executions/{id}?wait=N`), in any hub process.

Every statement that ends an execution announces it on `CHANNEL` (`lifecycle`, the `ends` effect), and each
hub process's `Listener` hears it, the ending process's own included.
"""

from __future__ import annotations

from exekra.hub.listener import Listener
from exekra.hub.waiters import Waiters

CHANNEL = "exekra_finished"  # payload: the execution id


class Endings(Waiters):
    """This process's clients waiting for an execution to end, by execution id."""

    def __init__(self, listener: Listener) -> None:
        super().__init__()
        listener.subscribe(CHANNEL, self.deliver_key, on_connect=self.notify_all)
