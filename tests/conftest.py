"""Servers for the whole test session.

By default PostgreSQL and Redis are embedded: started here for the session and stopped at its end.
`EXEKRA_TEST_DATABASE_URL` and `EXEKRA_TEST_REDIS_URL` point the suite at running servers instead
(`make test-system`); each session still gets a database and a Redis db index of its own.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis

from exekra.embedded import EmbeddedPostgres, EmbeddedRedis, create_database, drop_database

from .redis_servers import Servers


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server's `postgres` database, as a superuser."""
    external = os.environ.get("EXEKRA_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with _server_dir() as root, EmbeddedPostgres(root / "pg", throwaway=True) as server:
        yield server.url


@pytest.fixture(scope="session")
def database_url(pg_server_url: str) -> Iterator[str]:
    """URL of an empty database created for this session and dropped at its end."""
    name = f"exekra_test_{secrets.token_hex(6)}"
    url = create_database(pg_server_url, name)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """URL of a Redis server."""
    external = os.environ.get("EXEKRA_TEST_REDIS_URL")
    if external:
        yield external
        return
    with EmbeddedRedis() as server:
        yield server.url


# The key that marks a Redis db index as a test session's own (set again after the session's first flush).
_CLAIM_KEY = "exekra-test:session"


@pytest.fixture(scope="session")
def redis_url(redis_server_url: str) -> Iterator[str]:
    """URL of a Redis db index (1-15) of this session's own, flushed at its start and end."""
    token = secrets.token_hex(8)
    url = _claim_redis_db(redis_server_url, token)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
        client.set(_CLAIM_KEY, token)
        yield url
        client.flushdb()


@pytest.fixture
def embedded_redis() -> Iterator[Callable[..., EmbeddedRedis]]:
    """Factory of started private Redis servers (`EmbeddedRedis` arguments) to kill and restart at will.

    Every server made is stopped when the test ends.
    """
    with contextlib.ExitStack() as servers:

        def make_redis(
            data_dir: Path | None = None, port: int | None = None, binary: Path | None = None
        ) -> EmbeddedRedis:
            return servers.enter_context(EmbeddedRedis(data_dir, port, binary=binary))

        yield make_redis


@pytest.fixture
def server_tmp_path() -> Iterator[Path]:
    """A temporary directory for server data (an `EmbeddedPostgres` data dir), removed after the test.

    Use it instead of `tmp_path` for PostgreSQL: as root the server runs as `exekra-pg`, and pytest's
    per-user base directory is reset to mode 0700 whenever another pytest session starts, which would
    cut that user off from a data dir beneath it.
    """
    with _server_dir() as path:
        yield path


@contextlib.contextmanager
def _server_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="exekra-test-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _claim_redis_db(server_url: str, token: str) -> str:
    """An empty db index on the server, if any, so that concurrent sessions on one server (pytest-xdist's workers,
    two checkouts) keep apart: the first session to set the claim key in an empty index has it."""
    candidates = [_with_redis_db(server_url, db) for db in random.sample(range(1, 16), 15)]
    for url in candidates:
        with redis.Redis.from_url(url) as client:
            if client.dbsize() == 0 and client.set(_CLAIM_KEY, token, nx=True):
                return url
    return candidates[0]


def _with_redis_db(url: str, db: int) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    """Redis servers a test starts (`servers.start(name, *args)`), every one stopped when it ends."""
    started = Servers(tmp_path)
    try:
        yield started
    finally:
        started.stop()
