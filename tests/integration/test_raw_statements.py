"""The hot path's statements on the driver (exekra/db/raw.py, `Database.statements` and `reading`): the same
statements, results, commit hooks and errors as on an ORM session."""

from __future__ import annotations

import contextlib
import uuid

import asyncpg
import httpx
import pytest
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.exc import TimeoutError as PoolTimeout

from exekra.db import session as session_module
from exekra.db.raw import RawSession, driver_error
from exekra.hub import effects
from exekra.hub.audit import service as audit
from exekra.hub.audit.service import Actor
from exekra.hub.context import Hub
from exekra.hub.effects import Transition
from exekra.hub.runners import service as runners_service

ACTOR = Actor("USER", str(uuid.uuid4()), "127.0.0.1")
_ECHO = text("SELECT CAST(:a AS int) AS a, CAST(:a AS int) + CAST(:b AS int) AS total, CAST(:doc AS jsonb) AS doc")
_ECHO_JSON = _ECHO.bindparams(bindparam("doc", type_=JSONB))
_SERIES = text("SELECT n FROM generate_series(1, CAST(:n AS int)) AS n")


async def _audited(hub: Hub, entity_id: str) -> int:
    async with hub.db.reading() as session:
        counted = text("SELECT count(*) FROM audit_log WHERE entity_id = :id")
        return int((await session.execute(counted, {"id": entity_id})).scalar_one())


class Abort(Exception):
    """Raised inside a transaction to roll it back."""


async def test_a_text_statement_runs_with_named_parameters_and_reads_like_an_orm_result(hub: Hub) -> None:
    async with hub.db.reading() as session:
        row = (await session.execute(_ECHO_JSON, {"a": 2, "b": 3, "doc": {"k": ["v", 1]}})).one()
        assert (row.a, row.total, row.doc) == (2, 5, {"k": ["v", 1]})  # a repeated name is one parameter
        assert (await session.execute(_SERIES, {"n": 1})).scalar_one() == 1
        assert (await session.execute(_SERIES, {"n": 0})).scalar_one_or_none() is None
        assert [r.n for r in (await session.execute(_SERIES, {"n": 3})).all()] == [1, 2, 3]
        with pytest.raises(MultipleResultsFound):
            (await session.execute(_SERIES, {"n": 2})).one()
        with pytest.raises(NoResultFound):
            (await session.execute(_SERIES, {"n": 0})).one()
        with pytest.raises(AttributeError):
            _ = row.missing
    assert isinstance(session, RawSession)
    assert hub.db.statement_cache.get(_ECHO_JSON) is hub.db.statement_cache.get(_ECHO_JSON)  # compiled once


async def test_a_committed_transaction_writes_its_audit_rows_and_applies_its_effects_after_the_commit(
    hub: Hub,
) -> None:
    applied: list[Transition] = []

    async def seen(transition: Transition) -> None:
        applied.append(transition)

    remove = hub.effects.on_end(seen)
    try:
        ident = uuid.uuid4()
        async with hub.db.statements() as session:
            audit.record(session, ACTOR, "raw.test", "execution", ident, {"n": 1})
            audit.record(session, ACTOR, "raw.test", "execution", ident, None)  # a Core insert of several rows
            ended = effects.Effects(ends=True)
            effects.record(session, Transition("raw", ended, execution_id=ident, status="COMPLETED"))
            assert applied == []  # not before the commit
        assert [t.execution_id for t in applied] == [ident]
    finally:
        remove()
    async with hub.db.reading() as session:
        rows = (
            await session.execute(
                text("SELECT details FROM audit_log WHERE entity_id = :id ORDER BY id"), {"id": str(ident)}
            )
        ).all()
    assert [r.details for r in rows] == [{"n": 1}, None]


async def test_a_transaction_that_raises_rolls_back_and_applies_nothing(hub: Hub) -> None:
    applied: list[Transition] = []

    async def seen(transition: Transition) -> None:
        applied.append(transition)

    remove = hub.effects.on_end(seen)
    ident = uuid.uuid4()
    try:
        with pytest.raises(Abort):
            async with hub.db.statements() as session:
                audit.record(session, ACTOR, "raw.rollback", "execution", ident, None)
                await session.execute(
                    text("INSERT INTO audit_log (actor_type, action, entity_id) VALUES ('SYSTEM', 'x', :id)"),
                    {"id": str(ident)},
                )
                effects.record(session, Transition("raw", effects.Effects(ends=True), execution_id=ident))
                raise Abort
    finally:
        remove()
    assert applied == []
    assert await _audited(hub, str(ident)) == 0


async def test_a_database_error_is_a_dbapi_error_with_its_sqlstate_and_the_connection_stays_usable(hub: Hub) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with hub.db.statements() as session:
            await session.execute(text("SELECT 1 / CAST(:v AS int)"), {"v": 0})
    assert getattr(caught.value.orig, "sqlstate", None) == "22012" and not caught.value.connection_invalidated
    for _ in range(hub.settings.pool_size + 1):  # every pooled connection is fine afterwards
        async with hub.db.reading() as session:
            assert (await session.execute(_SERIES, {"n": 1})).scalar_one() == 1


async def test_a_deadlock_on_the_driver_answers_503_retry_now(
    admin: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def undone(*args: object, **kwargs: object) -> None:
        raise driver_error("UPDATE runners ...", (), asyncpg.exceptions.DeadlockDetectedError("deadlock detected"))

    monkeypatch.setattr(runners_service, "list_runners", undone)
    r = await admin.get("/api/runners")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"


async def test_a_self_committing_statement_needs_no_transaction_and_refuses_an_audit_entry(hub: Hub) -> None:
    ident = str(uuid.uuid4())
    insert = text("INSERT INTO audit_log (actor_type, action, entity_id) VALUES ('SYSTEM', 'raw.single', :id)")
    with pytest.raises(DBAPIError):
        async with hub.db.statement() as session:
            await session.execute(insert, {"id": ident})
            await session.execute(text("SELECT 1 / CAST(:v AS int)"), {"v": 0})
    assert await _audited(hub, ident) == 1  # committed by itself: no BEGIN, no ROLLBACK
    with pytest.raises(RuntimeError, match="self-committing"):
        async with hub.db.statement() as session:
            audit.record(session, ACTOR, "raw.refused", "execution", ident, None)


async def test_a_connection_the_server_closed_is_not_handed_out_again(hub: Hub) -> None:
    backend = text("SELECT pg_backend_pid()")
    async with hub.db.reading() as first:
        pid = int((await first.execute(backend)).scalar_one())
        async with hub.db.reading() as second:
            killed = text("SELECT pg_terminate_backend(CAST(:pid AS int))")
            assert (await second.execute(killed, {"pid": pid})).scalar_one() is True
    failures = 0
    for _ in range(hub.settings.pool_size + 1):
        try:
            async with hub.db.reading() as session:
                assert int((await session.execute(backend)).scalar_one()) != pid
        except DBAPIError:
            failures += 1  # the request that meets the dead connection fails; the pool then replaces it
    assert failures <= 1


async def test_a_checkout_with_every_connection_taken_waits_with_a_bound(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an idle connection open a checkout takes it at once, without asyncpg's bound (a task per acquire); with
    every one taken, the next request waits at most `POOL_TIMEOUT_SECONDS` and answers PoolTimeout (503); every
    connection can be taken again afterwards."""
    one = text("SELECT 1")
    for again in (False, True):  # and every connection can be taken again afterwards
        async with contextlib.AsyncExitStack() as taken:
            for _ in range(hub.db.driver_pool_size):  # waited for while the hub's own background work holds one
                session = await taken.enter_async_context(hub.db.reading())
                assert (await session.execute(one)).scalar_one() == 1
            if not again:
                monkeypatch.setattr(session_module, "POOL_TIMEOUT_SECONDS", 0.2)
                with pytest.raises(PoolTimeout, match=r"came free in 0\.2 s"):
                    async with hub.db.reading():
                        pass
                monkeypatch.undo()
