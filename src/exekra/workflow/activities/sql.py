"""`sql.query` and `sql.execute` on SQLAlchemy: any database with a SQLAlchemy URL and a driver.

Values always travel as bound parameters (`:name` in the SQL), never spliced into the text. Each
statement runs in its own transaction, committed when it succeeds. One engine (connection pool) per
URL serves the whole execution and is closed when it ends.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import decimal
import importlib.util
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from exekra.workflow.activities.context import ActivityContext
from exekra.workflow.activities.spec import Params, activity, either
from exekra.workflow.errors import ActivityError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Engine

CATEGORY = "Database"
CAPABILITY = "sql"
KIND = "sql"
DEFAULT_MAX_ROWS = 1000
# Drivers used when a URL names none and SQLAlchemy's default one is not installed: (dialect, module, driver).
_FALLBACK_DRIVERS = (
    ("mysql", "MySQLdb", "pymysql"),
    ("mariadb", "MySQLdb", "pymysql"),
    ("postgresql", "psycopg", "pg8000"),
)
_INSTALL_HINTS = {"psycopg": "psycopg[binary]", "pymysql": "PyMySQL", "pg8000": "pg8000", "MySQLdb": "mysqlclient"}


class QueryParams(Params):
    url: str
    """An SQLAlchemy URL, usually `{{ credentials.<name>.url }}`: `postgresql://user:pw@host/db`,
    `mysql://…` or `mariadb://…` (PyMySQL), `sqlite:///path/file.db`."""
    sql: str
    """The statement, with `:name` placeholders for values."""
    params: dict[str, Any] = {}
    """The values of the placeholders."""
    max_rows: int = Field(DEFAULT_MAX_ROWS, ge=1)
    """Return at most this many rows; `truncated` tells when there were more."""


class QueryOutputs(Params):
    rows: list[dict[str, Any]]
    """The rows as objects keyed by column name. Dates and times are ISO-8601 text, decimals numbers
    (text when a number would lose digits), binary data base64 text."""
    row_count: int
    """How many rows are in `rows`."""
    columns: list[str]
    """The column names, in order."""
    truncated: bool
    """True when the result had more than `maxRows` rows."""


@activity("sql.query", category=CATEGORY, capability=CAPABILITY, params=QueryParams, outputs=QueryOutputs)
def query(ctx: ActivityContext, params: QueryParams) -> dict[str, Any]:
    """Run a statement that returns rows (SELECT, or anything with RETURNING) and return them."""
    from sqlalchemy import text

    engine = _engine(ctx, params.url)
    with _database_errors(), engine.begin() as connection:
        result = connection.execute(text(params.sql), params.params)
        if not result.returns_rows:
            raise ActivityError("the statement returns no rows: use sql.execute for it")
        columns = [str(column) for column in result.keys()]  # noqa: SIM118 - a result is not a dict
        fetched = result.fetchmany(params.max_rows + 1)
    rows = [{column: json_value(value) for column, value in zip(columns, row, strict=True)} for row in fetched]
    kept = rows[: params.max_rows]
    return {"rows": kept, "rowCount": len(kept), "columns": columns, "truncated": len(rows) > params.max_rows}


class ExecuteParams(Params):
    url: str
    """An SQLAlchemy URL, as for `sql.query`."""
    sql: str
    """The statement (INSERT, UPDATE, DELETE, DDL…), with `:name` placeholders."""
    params: Annotated[dict[str, Any] | list[dict[str, Any]], either("an object", "a list of objects")] = {}
    """The values of the placeholders; a list of objects runs the statement once per object, in one
    transaction (a batch: all or nothing)."""


class ExecuteOutputs(Params):
    row_count: int
    """Rows affected (summed over a batch); -1 when the database does not say."""


@activity("sql.execute", category=CATEGORY, capability=CAPABILITY, params=ExecuteParams, outputs=ExecuteOutputs)
def execute(ctx: ActivityContext, params: ExecuteParams) -> dict[str, Any]:
    """Run a statement that changes data or schema; a list of parameter sets makes a batch."""
    from sqlalchemy import text

    engine = _engine(ctx, params.url)
    if params.params == []:
        return {"rowCount": 0}
    with _database_errors(), engine.begin() as connection:
        result = connection.execute(text(params.sql), params.params)
        return {"rowCount": result.rowcount}


def json_value(value: Any) -> Any:
    """A database value as JSON can carry it."""
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value() and abs(value) < 2**63:
            return int(value)
        as_float = float(value)
        return as_float if decimal.Decimal(repr(as_float)) == value else str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def resolve_url(raw: str) -> URL:
    """The URL as SQLAlchemy reads it, with an installed driver when it names none."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except ArgumentError:
        raise ActivityError("param 'url' is not an SQLAlchemy URL (e.g. postgresql://user@host/db)") from None
    for dialect, default_module, fallback in _FALLBACK_DRIVERS:
        missing = importlib.util.find_spec(default_module) is None
        if url.drivername == dialect and missing and importlib.util.find_spec(fallback) is not None:
            return url.set(drivername=f"{dialect}+{fallback}")
    return url


def _engine(ctx: ActivityContext, raw_url: str) -> Engine:
    from sqlalchemy import Engine, create_engine
    from sqlalchemy.exc import NoSuchModuleError

    def create() -> tuple[Engine, Any]:
        url = resolve_url(raw_url)
        try:
            engine = create_engine(url, pool_pre_ping=True)
        except NoSuchModuleError:
            raise ActivityError(f"no SQLAlchemy dialect for '{url.drivername}'") from None
        except ImportError as exc:
            module = exc.name or url.get_driver_name()
            hint = _INSTALL_HINTS.get(module, module)
            raise ActivityError(
                f"the {url.drivername} driver is not installed on this runner: pip install {hint}"
            ) from None
        return engine, engine.dispose

    return ctx.scope.cached(f"{KIND}:{raw_url}", KIND, create, Engine)


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    """A database error becomes the node's failure: the driver's message, without SQL or parameters."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    try:
        yield
    except DBAPIError as exc:
        raise ActivityError(f"{type(exc.orig).__name__}: {str(exc.orig).strip()}") from None
    except SQLAlchemyError as exc:
        raise ActivityError(f"{type(exc).__name__}: {exc}") from None
