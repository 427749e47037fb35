"""Workflows and their versions: create, edit settings, save drafts, publish, export and import."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import orjson
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from exekra.db.locks import db_now
from exekra.db.session import Database
from exekra.hub import concurrency, effects
from exekra.hub.activities.service import known_activities
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from exekra.hub.lookup import IdPrefix, get_or_404
from exekra.hub.workflows.cycles import find_cycle
from exekra.hub.workflows.models import Workflow, WorkflowVersion
from exekra.hub.workflows.schemas import NewWorkflow, RetryPolicy, WorkflowImport, WorkflowPatch, WorkflowSummary
from exekra.workflow.definition import validate_definition
from exekra.workflow.errors import DefinitionError, Problem

ImportMode = Literal["create", "new-version"]


def _invalid(problems: list[Problem]) -> ValidationFailed:
    """422 naming the first problem; `details.problems` lists each as `{message, node?, edge?, param?}`."""
    return ValidationFailed(
        f"Invalid definition: {problems[0].message}", details={"problems": [p.to_api() for p in problems]}
    )


async def check_definition(db: Database, definition: dict[str, Any], *, max_bytes: int) -> None:
    """Refuse a definition over `max_bytes` (as compact JSON) with 413, or an invalid one with 422
    whose details list every problem. Activities are those of the hub's catalogue: the built-ins plus what
    registered runners declare."""
    try:
        size = len(orjson.dumps(definition))
    except orjson.JSONEncodeError as exc:  # e.g. an integer beyond 64 bits, which JSONB storage cannot take
        raise _invalid([Problem(f"definition: {exc}")]) from None
    if size > max_bytes:
        raise PayloadTooLarge(f"The definition is {size} bytes; the limit is {max_bytes}")
    try:
        validate_definition(definition, known_activities=await known_activities(db))
    except DefinitionError as exc:
        raise _invalid(exc.located or [Problem(str(exc))]) from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _summaries(session: AsyncSession, workflows: list[Workflow]) -> list[WorkflowSummary]:
    """Attach the latest and published version numbers to each workflow."""
    ids = [w.id for w in workflows]
    numbers: dict[uuid.UUID, tuple[int, int | None]] = {}
    if ids:
        rows = await session.execute(
            select(
                WorkflowVersion.workflow_id,
                func.max(WorkflowVersion.number).label("latest"),
                func.max(WorkflowVersion.number).filter(WorkflowVersion.published).label("published"),
            )
            .where(WorkflowVersion.workflow_id.in_(ids))
            .group_by(WorkflowVersion.workflow_id)
        )
        numbers = {row.workflow_id: (row.latest, row.published) for row in rows}
    return [WorkflowSummary(w, *numbers.get(w.id, (0, None))) for w in workflows]


async def _summary(session: AsyncSession, workflow: Workflow) -> WorkflowSummary:
    return (await _summaries(session, [workflow]))[0]


async def list_workflows(
    db: Database, *, offset: int, limit: int, search: str | None, archived: bool, id_prefix: IdPrefix | None = None
) -> tuple[list[WorkflowSummary], int]:
    """A page of workflows by name, matching `search` in name or description, with the total count."""
    query = select(Workflow).where(Workflow.archived == archived)
    if id_prefix is not None:
        query = query.where(id_prefix.matches(Workflow.id))
    if search:
        pattern = f"%{_escape_like(search)}%"
        query = query.where(
            Workflow.name.ilike(pattern, escape="\\") | Workflow.description.ilike(pattern, escape="\\")
        )
    async with db.session() as session:
        total = (await session.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
        rows = await session.execute(query.order_by(Workflow.name, Workflow.id).offset(offset).limit(limit))
        return await _summaries(session, list(rows.scalars())), int(total)


async def get_workflow(db: Database, workflow_id: str) -> WorkflowSummary:
    """A workflow with its versions, newest first (definitions are not loaded)."""
    async with db.session() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow")
        rows = await session.execute(
            select(WorkflowVersion)
            .options(defer(WorkflowVersion.definition))
            .where(WorkflowVersion.workflow_id == workflow.id)
            .order_by(WorkflowVersion.number.desc())
        )
        versions = list(rows.scalars())
    published = next((v.number for v in versions if v.published), None)
    return WorkflowSummary(workflow, versions[0].number if versions else 0, published, versions)


async def _insert_workflow(session: AsyncSession, data: NewWorkflow, actor: Actor) -> Workflow:
    workflow = Workflow(
        name=data.name,
        description=data.description,
        runner_type=data.runner_type,
        labels=data.labels,
        priority=data.priority,
        timeout_seconds=data.timeout_seconds,
        max_concurrent=data.max_concurrent,
        concurrency_key=data.concurrency_key,
        created_by=actor.user_id,
    )
    if data.retry is not None:
        workflow.retry_policy = data.retry.stored(since=(await db_now(session)).isoformat())
    session.add(workflow)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"A workflow named {data.name!r} already exists") from None
    return workflow


async def _add_version(
    session: AsyncSession, workflow: Workflow, definition: dict[str, Any], actor: Actor
) -> WorkflowVersion:
    """Append a draft numbered after the newest; the caller holds the workflow row's lock."""
    latest = (
        await session.execute(
            select(func.max(WorkflowVersion.number)).where(WorkflowVersion.workflow_id == workflow.id)
        )
    ).scalar_one()
    version = WorkflowVersion(
        workflow_id=workflow.id, number=(latest or 0) + 1, definition=definition, created_by=actor.user_id
    )
    session.add(version)
    await session.flush()
    return version


async def _retry_policy(session: AsyncSession, workflow: Workflow, policy: RetryPolicy | None) -> dict[str, Any] | None:
    """The policy to store: a changed policy keeps the moment the first was set, so a chain under way goes on."""
    if policy is None:
        return None
    since = workflow.retry_policy["since"] if workflow.retry_policy else (await db_now(session)).isoformat()
    return policy.stored(since=since)


async def _touch(session: AsyncSession, workflow: Workflow) -> None:
    """Set `updatedAt` from the database clock and load the new value."""
    workflow.updated_at = func.now()
    await session.flush()
    await session.refresh(workflow, ["updated_at"])


async def create_workflow(
    db: Database, data: NewWorkflow, actor: Actor, *, max_definition_bytes: int
) -> tuple[WorkflowSummary, WorkflowVersion]:
    """Create a workflow with version 1 as a draft; a taken name is a conflict."""
    await check_definition(db, data.definition, max_bytes=max_definition_bytes)
    async with db.transaction() as session:
        workflow = await _insert_workflow(session, data, actor)
        version = await _add_version(session, workflow, data.definition, actor)
        audit.record(session, actor, "workflow.create", "workflow", workflow.id, {"name": workflow.name})
    return WorkflowSummary(workflow, version.number, None), version


async def update_workflow(db: Database, workflow_id: str, patch: WorkflowPatch, actor: Actor) -> WorkflowSummary:
    """Change the settings the patch names (never the versions); a taken name is a conflict."""
    async with db.transaction() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow", for_update=True)
        limit_before = workflow.max_concurrent
        if patch.model_fields_set:
            for name, value in patch.model_dump(include=patch.model_fields_set - {"retry"}).items():
                setattr(workflow, name, value)
            if "retry" in patch.model_fields_set:
                workflow.retry_policy = await _retry_policy(session, workflow, patch.retry)
            try:
                await _touch(session, workflow)
            except IntegrityError:
                raise Conflict(f"A workflow named {patch.name!r} already exists") from None
            changes = patch.model_dump(include=patch.model_fields_set, by_alias=True)
            audit.record(session, actor, "workflow.update", "workflow", workflow.id, changes)
            await _limit_changed(session, workflow, limit_before)
        return await _summary(session, workflow)


# Not an execution's transition, but it has one of their effects: the waiting executions of the workflow are offered
# after the commit, since its groups may have free slots now.
_LIMIT_RAISED = effects.Effects(frees_slot=True)


async def _limit_changed(session: AsyncSession, workflow: Workflow, before: int | None) -> None:
    """A limit set where there was none applies to the live executions too; a limit raised or removed frees slots."""
    after = workflow.max_concurrent
    if before is None and after is not None:
        await concurrency.limit_live_executions(session, workflow.id)
    elif before is not None and (after is None or after > before):
        transition = effects.Transition("limit-raised", _LIMIT_RAISED, slot=concurrency.Group(workflow.id, None))
        effects.record(session, transition)


async def archive_workflow(db: Database, workflow_id: str, actor: Actor) -> WorkflowSummary:
    """Archive a workflow: it keeps its history but gets no new executions. Archiving twice is a no-op."""
    async with db.transaction() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow", for_update=True)
        if not workflow.archived:
            workflow.archived = True
            await _touch(session, workflow)
            audit.record(session, actor, "workflow.archive", "workflow", workflow.id, {"name": workflow.name})
        return await _summary(session, workflow)


async def create_version(
    db: Database, workflow_id: str, definition: dict[str, Any], actor: Actor, *, max_definition_bytes: int
) -> WorkflowVersion:
    """Save a new draft, numbered one after the newest version."""
    await check_definition(db, definition, max_bytes=max_definition_bytes)
    async with db.transaction() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow", for_update=True)
        version = await _add_version(session, workflow, definition, actor)
        await _touch(session, workflow)
        audit.record(session, actor, "workflow.version.create", "workflow", workflow.id, {"version": version.number})
    return version


async def list_versions(
    db: Database, workflow_id: str, *, offset: int, limit: int
) -> tuple[list[WorkflowVersion], int]:
    """A page of a workflow's versions, newest first, without definitions."""
    async with db.session() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow")
        total = (
            await session.execute(
                select(func.count()).select_from(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
            )
        ).scalar_one()
        rows = await session.execute(
            select(WorkflowVersion)
            .options(defer(WorkflowVersion.definition))
            .where(WorkflowVersion.workflow_id == workflow.id)
            .order_by(WorkflowVersion.number.desc())
            .offset(offset)
            .limit(limit)
        )
        return list(rows.scalars()), int(total)


async def get_version(db: Database, workflow_id: str, number: str) -> WorkflowVersion:
    """One version, with its definition; a number that is not a positive integer is simply not found."""
    async with db.session() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow")
        version = None
        if number.isdigit() and len(number) <= 9:
            version = (
                await session.execute(
                    select(WorkflowVersion).where(
                        WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.number == int(number)
                    )
                )
            ).scalar_one_or_none()
    if version is None:
        raise NotFound(f"version {number} of workflow {workflow_id} not found")
    return version


async def publish(
    db: Database, workflow_id: str, actor: Actor, number: int | None = None
) -> tuple[WorkflowSummary, WorkflowVersion]:
    """Publish version `number`, or else the latest version, which must then be a draft; the previously
    published one becomes superseded. Publishing an earlier version is a rollback: new executions run it,
    executions already created keep the version they were created with.

    404 for an unknown version, 409 when it is published already, 422 when it uses an activity that is no
    longer known (the runner that declared it was removed) or when its `workflow.run` nodes would make the
    workflow run itself (`cycles`)."""
    known = await known_activities(db)
    async with db.transaction() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow", for_update=True)
        chosen = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow.id)
        if number is None:
            chosen = chosen.order_by(WorkflowVersion.number.desc()).limit(1)
        else:
            chosen = chosen.where(WorkflowVersion.number == number)
        version = (await session.execute(chosen)).scalar_one_or_none()
        if number is not None and version is None:
            raise NotFound(f"workflow {workflow.name} has no version {number}")
        if version is None or version.published:
            if number is not None:
                raise Conflict(f"version {number} of workflow {workflow.name} is the published one already")
            raise Conflict(f"workflow {workflow.name} has no draft to publish: save a new version first")
        try:
            validate_definition(version.definition, known_activities=known)
        except DefinitionError as exc:
            raise _invalid(exc.located or [Problem(str(exc))]) from None
        cycle = await find_cycle(session, workflow.id, workflow.name, version.definition)
        if cycle is not None:
            raise _invalid([cycle])
        # Two statements, in this order: the partial unique index allows one published version at a time.
        previous = (
            await session.execute(
                update(WorkflowVersion)
                .where(WorkflowVersion.workflow_id == workflow.id, WorkflowVersion.published)
                .values(published=False)
                .returning(WorkflowVersion.number)
            )
        ).scalar_one_or_none()
        version.published = True
        version.published_at = func.now()
        await session.flush()
        await session.refresh(version, ["published_at"])
        await _touch(session, workflow)
        audit.record(
            session,
            actor,
            "workflow.publish",
            "workflow",
            workflow.id,
            {"version": version.number, "previousVersion": previous},
        )
        newest = (
            await session.execute(
                select(func.max(WorkflowVersion.number)).where(WorkflowVersion.workflow_id == workflow.id)
            )
        ).scalar_one()
    return WorkflowSummary(workflow, newest, version.number), version


async def export_workflow(db: Database, workflow_id: str) -> tuple[Workflow, WorkflowVersion]:
    """The workflow with the version an export carries: the published one, else the latest."""
    async with db.session() as session:
        workflow = await get_or_404(session, Workflow, workflow_id, "workflow")
        version = (
            await session.execute(
                select(WorkflowVersion)
                .where(WorkflowVersion.workflow_id == workflow.id)
                .order_by(WorkflowVersion.published.desc(), WorkflowVersion.number.desc())
                .limit(1)
            )
        ).scalar_one()
    return workflow, version


async def import_workflow(
    db: Database, document: WorkflowImport, actor: Actor, *, mode: ImportMode, max_definition_bytes: int
) -> tuple[WorkflowSummary, WorkflowVersion]:
    """Create a workflow from an export document; with mode `new-version` and a workflow of that name
    already present, add the definition to it as a new draft instead (its settings are kept)."""
    await check_definition(db, document.definition, max_bytes=max_definition_bytes)
    async with db.transaction() as session:
        existing = None
        if mode == "new-version":
            existing = (
                await session.execute(select(Workflow).where(Workflow.name == document.name).with_for_update())
            ).scalar_one_or_none()
        workflow = existing or await _insert_workflow(session, document, actor)
        version = await _add_version(session, workflow, document.definition, actor)
        if existing:
            await _touch(session, workflow)
        audit.record(
            session,
            actor,
            "workflow.import",
            "workflow",
            workflow.id,
            {"name": workflow.name, "mode": mode, "version": version.number},
        )
        return await _summary(session, workflow), version
