"""`sql.query` / `sql.execute` against SQLite, an embedded PostgreSQL, and MariaDB when one answers."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import secrets
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from exekra.embedded import create_database, drop_database
from exekra.workflow import run_workflow
from exekra.workflow.activities import sql
from exekra.workflow.errors import ActivityError

from .conftest import Call

MARIADB = ("127.0.0.1", 3306)


def mariadb_answers() -> bool:
    with contextlib.suppress(OSError), socket.create_connection(MARIADB, timeout=1):
        return True
    return False


@pytest.fixture(scope="module")
def postgresql_url(pg_server_url: str) -> Iterator[str]:
    name = f"exekra_sql_{secrets.token_hex(4)}"
    url = create_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def mariadb_url() -> Iterator[str]:
    if not mariadb_answers():
        pytest.skip("no MariaDB at 127.0.0.1:3306 (the machine's own server is optional)")
    import pymysql

    name = f"exekra_sql_{secrets.token_hex(4)}"
    connection = pymysql.connect(host=MARIADB[0], port=MARIADB[1], user="root")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {name}")
        yield f"mariadb://root@{MARIADB[0]}:{MARIADB[1]}/{name}"
        with connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE {name}")
    finally:
        connection.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL with a fresh `items` table."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'items.db'}"
    else:
        url = request.getfixturevalue(f"{request.param}_url")
    return url


def make_table(call: Call, url: str) -> None:
    call(sql.execute, url=url, sql="DROP TABLE IF EXISTS items")
    created = call(
        sql.execute,
        url=url,
        sql="CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL UNIQUE,"
        " price NUMERIC(10, 2), added DATE, seen TIMESTAMP NULL)",
    )
    assert created == {"rowCount": 0} or created["rowCount"] in (-1, 0)


def test_rows_go_in_one_at_a_time_and_as_a_batch_and_come_back_with_their_types(call: Call, database: str) -> None:
    make_table(call, database)
    insert = "INSERT INTO items (id, name, price, added, seen) VALUES (:id, :name, :price, :added, :seen)"
    one = call(
        sql.execute,
        url=database,
        sql=insert,
        params={"id": 1, "name": "bolt", "price": 0.25, "added": "2024-03-01", "seen": "2024-03-01 08:30:00"},
    )
    assert one == {"rowCount": 1}
    batch = [{"id": i, "name": f"part {i}", "price": i * 1.5, "added": "2024-03-02", "seen": None} for i in range(2, 6)]
    assert call(sql.execute, url=database, sql=insert, params=batch) == {"rowCount": 4}

    result = call(
        sql.query,
        url=database,
        sql="SELECT id, name, price, added FROM items WHERE price >= :least ORDER BY id",
        params={"least": 0.2},
        maxRows=3,
    )
    assert result["columns"] == ["id", "name", "price", "added"]
    assert result["rowCount"] == 3 and result["truncated"] is True
    first = result["rows"][0]
    assert first["id"] == 1 and first["name"] == "bolt"
    assert first["price"] == 0.25  # NUMERIC comes back as a number
    assert first["added"] == "2024-03-01"  # a DATE as ISO text (SQLite keeps the text as it is)
    assert result["rows"][2]["price"] == 4.5


def test_hostile_values_are_bound_never_spliced(call: Call, database: str) -> None:
    make_table(call, database)
    hostile = "x'); DROP TABLE items; --"
    insert = "INSERT INTO items (id, name) VALUES (:id, :name)"
    assert call(sql.execute, url=database, sql=insert, params={"id": 1, "name": hostile}) == {"rowCount": 1}
    rows = call(sql.query, url=database, sql="SELECT name FROM items WHERE name = :name", params={"name": hostile})
    assert rows["rows"] == [{"name": hostile}]
    sneaky = call(
        sql.query, url=database, sql="SELECT id FROM items WHERE name = :name", params={"name": "' OR '1'='1"}
    )
    assert sneaky["rows"] == []
    assert call(sql.query, url=database, sql="SELECT COUNT(*) AS n FROM items")["rows"] == [{"n": 1}]


def test_a_batch_is_all_or_nothing(call: Call, database: str) -> None:
    make_table(call, database)
    insert = "INSERT INTO items (id, name) VALUES (:id, :name)"
    batch = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "a"}]  # the last repeats a name
    with pytest.raises(ActivityError):
        call(sql.execute, url=database, sql=insert, params=batch)
    assert call(sql.query, url=database, sql="SELECT COUNT(*) AS n FROM items")["rows"] == [{"n": 0}]


def test_database_errors_fail_the_node_with_the_drivers_message(call: Call, database: str) -> None:
    make_table(call, database)
    with pytest.raises(ActivityError) as raised:
        call(sql.query, url=database, sql="SELECT nope FROM items")
    assert "nope" in str(raised.value) and "[SQL:" not in str(raised.value)
    with pytest.raises(ActivityError, match=r"^the statement returns no rows: use sql\.execute for it$"):
        call(sql.query, url=database, sql="UPDATE items SET name = 'x' WHERE id = -1")


def test_the_url_comes_from_a_credential_and_stays_out_of_the_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.db'}"
    lines: list[str] = []
    definition = {
        "nodes": [
            {
                "id": "create",
                "activity": "sql.execute",
                "params": {"url": "{{ credentials.db.url }}", "sql": "CREATE TABLE t (n INTEGER)"},
            },
            {
                "id": "fill",
                "activity": "sql.execute",
                "params": {
                    "url": "{{ credentials.db.url }}",
                    "sql": "INSERT INTO t (n) VALUES (:n)",
                    "params": "{{ inputs.numbers }}",
                },
            },
            {
                "id": "sum",
                "activity": "sql.query",
                "params": {"url": "{{ credentials.db.url }}", "sql": "SELECT SUM(n) AS total FROM t"},
            },
        ],
        "edges": [{"from": "create", "to": "fill"}, {"from": "fill", "to": "sum"}],
        "outputs": {"inserted": "{{ nodes.fill.rowCount }}", "total": "{{ nodes.sum.rows[0].total }}"},
    }
    outputs = run_workflow(
        definition,
        {"numbers": [{"n": 1}, {"n": 2}, {"n": 39}]},
        execution={"id": "ex", "attempt": 1},
        credentials={"db": {"url": url}},
        workdir=tmp_path,
        emit=lambda level, message, **_: lines.append(message),
    )
    assert outputs == {"inserted": 3, "total": 42}
    assert not any(url in line for line in lines)


def test_values_become_json(call: Call) -> None:
    assert sql.json_value(decimal.Decimal("12.50")) == 12.5
    assert sql.json_value(decimal.Decimal("7.00")) == 7
    assert sql.json_value(decimal.Decimal("0.1000000000000000000001")) == "0.1000000000000000000001"
    assert sql.json_value(datetime.date(2024, 3, 1)) == "2024-03-01"
    assert sql.json_value(datetime.datetime(2024, 3, 1, 8, 30)) == "2024-03-01T08:30:00"
    assert sql.json_value(datetime.timedelta(minutes=2)) == 120.0
    assert sql.json_value(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert sql.json_value(b"\x00\xff") == "AP8="


def test_urls_are_checked_and_get_an_installed_driver(call: Call) -> None:
    assert sql.resolve_url("mariadb://root@h/db").drivername == "mariadb+pymysql"  # mysqlclient is not installed
    assert sql.resolve_url("postgresql://u@h/db").drivername == "postgresql"  # psycopg is
    with pytest.raises(ActivityError, match=r"^param 'url' is not an SQLAlchemy URL"):
        call(sql.query, url="not a url", sql="SELECT 1")
    with pytest.raises(ActivityError, match=r"^no SQLAlchemy dialect for 'nosuchdb'$"):
        call(sql.query, url="nosuchdb://h/db", sql="SELECT 1")
    with pytest.raises(ActivityError, match=r"^param 'params' must be an object or a list of objects$"):
        call(sql.execute, url="sqlite://", sql="SELECT 1", params=[1])
