"""Executions: the filterable list (keyset paging), and the detail with timeline, metrics and live logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from exekra.hub import concurrency
from exekra.hub.artifacts import service as artifacts
from exekra.hub.dashboard.forms import parse_moment
from exekra.hub.dashboard.web import PageRoute, redirect, render
from exekra.hub.deps import CurrentUser, get_hub
from exekra.hub.errors import Conflict, NotFound
from exekra.hub.executions.models import TERMINAL_STATUSES, ExecutionStatus
from exekra.hub.executions.names import waiting_reasons
from exekra.hub.executions.nodes import execution_graph, runs_to_api
from exekra.hub.executions.queries import ExecutionFilter
from exekra.hub.lookup import parse_id
from exekra.hub.runners import service as runners
from exekra.hub.workflows import service as workflows

router = APIRouter(route_class=PageRoute)

PAGE_SIZE = 50
CHOICES = 200  # workflows and runners offered in the filter menus
LOG_LINES_PER_RENDER = 500  # the page comes fast; the poll fetches the rest at once, 1,000 lines a request
LOG_LINES_PER_POLL = 1000
CHILDREN_SHOWN = 20  # sub-workflows listed on an execution's page; the list page filtered by parent has them all


def _filter(workflow: str, runner: str, status: str, since: str, until: str, parent: str) -> ExecutionFilter:
    statuses = tuple(
        s for s in (part.strip().upper() for part in status.split(",")) if s in ExecutionStatus.__members__
    )
    return ExecutionFilter(
        workflow_id=parse_id(workflow, "workflow") if workflow else None,
        runner_id=parse_id(runner, "runner") if runner else None,
        statuses=statuses,
        since=parse_moment(since),
        until=parse_moment(until),
        parent_id=parse_id(parent, "execution") if parent else None,
    )


@router.get("/executions")
async def executions_page(
    request: Request,
    user: CurrentUser,
    workflow: str = "",
    runner: str = "",
    status: str = "",
    since: str = "",
    until: str = "",
    parent: str = "",
    cursor: str | None = None,
) -> Response:
    """Newest first, 50 a page, keyset paging (`cursor`): every page costs the same, however deep."""
    hub = get_hub(request)
    page = await hub.executions.history(
        _filter(workflow, runner, status, since, until, parent), offset=0, limit=PAGE_SIZE, cursor=cursor
    )
    workflow_choices, _ = await workflows.list_workflows(hub.db, offset=0, limit=CHOICES, search=None, archived=False)
    runner_choices, _ = await runners.list_runners(hub.db, offset=0, limit=CHOICES)
    filters = {
        "workflow": workflow,
        "runner": runner,
        "status": status,
        "since": since,
        "until": until,
        "parent": parent,
    }
    context = {
        "page": page,
        "filters": filters,
        "query": {k: v for k, v in filters.items() if v},
        "cursor": cursor,
        "statuses": list(ExecutionStatus),
        "workflow_choices": workflow_choices,
        "runner_choices": runner_choices,
        "runner_names": {r.id: r.name for r in runner_choices},
        "now": datetime.now(UTC),
    }
    return render(request, "executions.html", context, section="executions")


async def _execution(request: Request, execution_id: str) -> dict[str, Any]:
    hub = get_hub(request)
    view = await hub.executions.get(execution_id)
    execution = view.execution
    runner = None
    if execution.runner_id:
        try:
            runner = await runners.get_runner(hub.db, str(execution.runner_id))
        except NotFound:
            runner = None  # deleted since: the execution keeps its history
    waiting_reason = (await waiting_reasons(hub.db, [execution])).get(execution.id)
    files = await artifacts.list_artifacts(hub.db, execution.id)
    retried_as = None  # the automatic retry of a failure, once the hub has made it
    if execution.status == ExecutionStatus.FAILED:
        retries = await hub.executions.history(ExecutionFilter(retry_of=execution.id), offset=0, limit=1, cursor=None)
        retried_as = retries.rows[0].execution if retries.rows else None
    children = []  # the sub-workflows it started (`workflow.run`), newest first
    if execution.has_children:
        found = await hub.executions.history(
            ExecutionFilter(parent_id=execution.id), offset=0, limit=CHILDREN_SHOWN, cursor=None
        )
        children = found.rows
    return {
        "execution": execution,
        "artifacts": files,
        "workflow_name": view.workflow_name,
        "version_number": view.version_number,
        "runner": runner,
        "terminal": execution.status in TERMINAL_STATUSES,
        "waiting_reason": waiting_reason,
        "waits_for_slot": (waiting_reason or "").startswith(concurrency.LIMIT_REACHED),
        "retried_as": retried_as,
        "children": children,
        "children_shown": CHILDREN_SHOWN,
        # What the status and files panels show changes only with these: a poll re-renders them when they do.
        "state_key": (
            f"{execution.status}-{int(execution.stop_requested)}-{execution.attempt}-{int(bool(waiting_reason))}"
            f"-{len(files)}-{retried_as.id if retried_as else ''}"
            f"-{'.'.join(f'{c.execution.id}:{c.execution.status}' for c in children)}"
        ),
        "now": datetime.now(UTC),
    }


@router.get("/executions/{execution_id}")
async def execution_page(request: Request, execution_id: str, user: CurrentUser) -> Response:
    context = await _execution(request, execution_id)
    hub = get_hub(request)
    lines, next_seq = await hub.executions.logs(execution_id, 0, LOG_LINES_PER_RENDER)
    context.update(lines=lines, next_seq=next_seq, **_polling(context, len(lines), LOG_LINES_PER_RENDER))
    definition, runs = await execution_graph(hub.db, execution_id)
    context["graph"] = {"executionId": str(context["execution"].id), "definition": definition}
    context["node_runs"] = runs_to_api(runs)
    return render(request, "execution.html", context, section="executions")


def _polling(context: dict[str, Any], fetched: int, limit: int) -> dict[str, bool]:
    """Poll while the execution may still change or log lines are still to be fetched (`backlog`: the next
    poll goes at once)."""
    backlog = fetched >= limit
    return {"polling": not context["terminal"] or backlog, "backlog": backlog}


@router.get("/executions/{execution_id}/live")
async def execution_live(
    request: Request, execution_id: str, user: CurrentUser, after: int = 0, state: str = ""
) -> Response:
    """One poll of the detail page: new log lines, the status panel when it changed, and the next poll
    (none once the execution has ended and every line is shown)."""
    context = await _execution(request, execution_id)
    context["previous_state"] = state
    hub = get_hub(request)
    lines, next_seq = await hub.executions.logs(execution_id, max(0, after), LOG_LINES_PER_POLL)
    context.update(lines=lines, next_seq=next_seq, **_polling(context, len(lines), LOG_LINES_PER_POLL))
    if state != context["state_key"] or any(line.event for line in lines):
        # A node started or ended, or the execution did (a node still running is then stopped): the graph's
        # states ride with this poll.
        context["node_runs"] = runs_to_api((await execution_graph(hub.db, execution_id))[1])
    return render(request, "_execution_live.html", context)


@router.post("/executions/{execution_id}/stop")
async def stop(request: Request, execution_id: str, user: CurrentUser) -> Response:
    hub = get_hub(request)
    back = f"/executions/{parse_id(execution_id, 'execution')}"
    try:
        stopped = await hub.executions.stop(execution_id, user.actor)
    except Conflict as exc:
        return redirect(request, back, exc.message, "error")
    if stopped.status == ExecutionStatus.STOPPED:
        return redirect(request, back, "Execution stopped.")
    return redirect(request, back, "Stop requested: the runner stops the execution within a few seconds.")


@router.post("/executions/{execution_id}/retry")
async def retry(request: Request, execution_id: str, user: CurrentUser) -> Response:
    """A new execution of the same version with the same inputs (as `POST /api/executions/{id}/retry`)."""
    hub = get_hub(request)
    back = f"/executions/{parse_id(execution_id, 'execution')}"
    try:
        created = await hub.executions.retry(execution_id, user.actor)
    except Conflict as exc:
        return redirect(request, back, exc.message, "error")
    return redirect(request, f"/executions/{created.execution.id}", "Retry queued.")
