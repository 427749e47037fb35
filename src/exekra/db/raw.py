"""Statements on the driver: the hot path's transactions without the ORM session.

The runner protocol, the claims and the execution reads run statements written once (`text()` and Core
inserts built at import). An ORM session costs about 0.3 ms of CPU per transaction on top of the driver
(greenlet hand-offs, the unit of work, result processing); here a statement is compiled once per process
to PostgreSQL's `$n` form and run on the pooled connection's asyncpg driver, whose prepared-statement cache
turns each repeat into a bind and execute.

`Statements` is what the lifecycle rules, the effects and the audit need of a transaction (`execute` and
`info`): an ORM `AsyncSession` provides it, and so does `RawSession`, so one rule serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import asyncpg
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import TextClause

Params = Mapping[str, Any] | Sequence[Mapping[str, Any]]


class Rows(Protocol):
    """What a statement's caller reads of its result (an ORM `Result` has it too)."""

    def first(self) -> Any: ...

    def one(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...

    def scalar_one(self) -> Any: ...

    def scalar_one_or_none(self) -> Any: ...


class Statements(Protocol):
    """A transaction as the lifecycle rules use it: run a statement; `info` carries what the commit applies."""

    @property
    def info(self) -> dict[Any, Any]: ...

    async def execute(self, statement: Executable, params: Params | None = None) -> Rows: ...


class Row(asyncpg.Record):  # type: ignore[misc]  # asyncpg ships no type information
    """A row whose columns read as attributes, as SQLAlchemy's rows do (`row.id`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class RawResult:
    """The rows of one statement, read the way the hot path reads an ORM result."""

    __slots__ = ("rows",)

    def __init__(self, rows: list[Row]) -> None:
        self.rows = rows

    def __iter__(self) -> Any:
        return iter(self.rows)

    def first(self) -> Row | None:
        return self.rows[0] if self.rows else None

    def one(self) -> Row:
        if len(self.rows) != 1:
            raise NoResultFound("No row was found") if not self.rows else MultipleResultsFound("Several rows")
        return self.rows[0]

    def all(self) -> list[Row]:
        return self.rows

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        if not self.rows:
            return None
        return self.one()[0]


class _Compiled:
    """A statement in PostgreSQL's `$n` form, the parameter names in order, and their conversions."""

    __slots__ = ("names", "processors", "sql", "statement")

    def __init__(self, statement: TextClause | Insert, dialect: Dialect, keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if keys is not None else None)
        self.statement = statement  # held: the cache is keyed by its id
        self.sql = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        # A JSON parameter is serialised by its type (the driver's codec takes the text), as SQLAlchemy does.
        bind = compiled._bind_processors
        self.processors: dict[str, Callable[[Any], Any]] = {
            name: fn for name, fn in bind.items() if name in self.names and callable(fn)
        }

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = [params[name] for name in self.names]
        if self.processors:
            for i, name in enumerate(self.names):
                process = self.processors.get(name)
                if process is not None and values[i] is not None:
                    values[i] = process(values[i])
        return values


class StatementCache:
    """Each statement compiled once per process (per set of inserted columns for a Core insert)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._compiled: dict[tuple[int, tuple[str, ...] | None], _Compiled] = {}

    def get(self, statement: Executable, keys: Sequence[str] | None = None) -> _Compiled:
        if not isinstance(statement, TextClause | Insert):
            raise TypeError(f"only text() and Core inserts run on the driver, not {type(statement).__name__}")
        key = (id(statement), tuple(keys) if keys is not None else None)
        compiled = self._compiled.get(key)
        if compiled is None or compiled.statement is not statement:
            compiled = self._compiled[key] = _Compiled(statement, self.dialect, keys)
        return compiled


def driver_error(statement: str, args: Any, exc: BaseException) -> DBAPIError:
    """A driver error in the family every other statement raises (`DBAPIError`, with `orig.pgcode`)."""
    return DBAPIError(statement, args, exc, connection_invalidated=not isinstance(exc, asyncpg.PostgresError))


# What the driver raises for a statement that failed; InternalClientError is a connection whose protocol broke
# under it (the server ended the session while it idled in the pool): the pool closes and replaces it.
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError)


def sqlstate(exc: DBAPIError) -> str | None:
    """The SQLSTATE of a database error, whichever way it ran: SQLAlchemy's driver adapter names it `pgcode`,
    asyncpg (the statements here) `sqlstate`."""
    return getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)


SELF_COMMITTING = "exekra.self-committing"
"""`info` key of a session whose statements each commit by themselves (`Database.statement`): nothing that must
commit with a change (an audit entry) may be recorded on it."""


class RawSession:
    """`Statements` on an asyncpg connection (in a transaction when the caller opened one)."""

    def __init__(self, connection: asyncpg.Connection, cache: StatementCache, *, self_committing: bool = False) -> None:
        self.connection = connection
        self.cache = cache
        self.info: dict[Any, Any] = {SELF_COMMITTING: True} if self_committing else {}

    async def execute(self, statement: Executable, params: Params | None = None) -> RawResult:
        if params is not None and not isinstance(params, Mapping):
            await self._execute_many(statement, params)
            return RawResult([])
        compiled = self.cache.get(statement)
        args = compiled.args(params or {})
        try:
            rows = await self.connection.fetch(compiled.sql, *args, record_class=Row)
        except DRIVER_ERRORS as exc:
            raise driver_error(compiled.sql, args, exc) from exc
        return RawResult(rows)

    async def _execute_many(self, statement: Executable, params: Sequence[Mapping[str, Any]]) -> None:
        if not params:
            return
        compiled = self.cache.get(statement, list(params[0]))
        batch = [compiled.args(p) for p in params]
        try:
            await self.connection.executemany(compiled.sql, batch)
        except DRIVER_ERRORS as exc:
            raise driver_error(compiled.sql, batch, exc) from exc
