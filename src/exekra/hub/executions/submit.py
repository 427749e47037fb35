"""Starting an execution on behalf of a user: create it, then hand it to the dispatcher."""

from __future__ import annotations

from exekra.hub.audit.service import Actor
from exekra.hub.context import Hub
from exekra.hub.executions.service import Created, ExecutionRequest, create_execution
from exekra.hub.tasks import spawn


async def submit_execution(hub: Hub, request: ExecutionRequest, actor: Actor) -> Created:
    """Create the execution (duplicates answered by the Redis mirror, enforced by PostgreSQL) and match it.

    Matching runs in the background right after, so the caller's response never waits on it.
    """
    created = await create_execution(
        hub.db, request, actor, dedup_window=hub.settings.dedup_window_seconds, mirror=hub.dedup
    )
    if not created.duplicate:
        spawn(hub.dispatcher.execution_queued(created.execution.id))
    return created
