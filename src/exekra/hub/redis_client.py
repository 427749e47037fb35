"""The one way the hub makes a Redis client (the queue's, the rate limiter's), from `REDIS_URL` as
`exekra.redis_url` reads it: a single server, TLS, a Unix socket, or the master that Redis Sentinel names.

Every client has short socket and connect timeouts, no retries inside the client and a bounded pool whose callers
wait at most `pool_wait` for a connection (docs/queue.md: the hub must never hang on Redis). Behind Sentinel, each
new connection asks the sentinels for the current master, and a connection to a master that was demoted fails
(`ReadOnlyError` becomes a connection error): after a failover the hub's next commands reach the new master once
the failed ones have sent it through direct mode (docs/deployment.md).
"""

from __future__ import annotations

import contextlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from exekra.redis_url import RedisTarget, parse_redis_url


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The master's connections, found through Sentinel, in a pool that makes callers wait for a free connection
    (as the single-server pool does) instead of failing at once."""

    async def disconnect(self, inuse_connections: bool = True) -> None:
        await super().disconnect(inuse_connections)
        await self.sentinel_manager.aclose()  # its connections to the sentinels too; they reconnect when asked


def redis_client(url: str, *, timeout: float, max_connections: int, pool_wait: float) -> aioredis.Redis:
    """A client of the Redis that `url` names. Raises `InvalidRedisUrl` for a URL that cannot be used."""
    target = parse_redis_url(url)
    socket: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        **_tls(target),
    }
    connection = socket | {"decode_responses": True, "db": target.db, **target.auth}
    if target.sentinels:
        sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=socket | target.sentinel_auth)
        # redis-py's SentinelConnectionPool carries no annotations.
        pool: aioredis.ConnectionPool = _BlockingSentinelPool(  # type: ignore[no-untyped-call]
            target.service,
            sentinel,
            is_master=True,
            max_connections=max_connections,
            timeout=pool_wait,
            **connection,
        )
    else:
        pool = aioredis.BlockingConnectionPool(
            max_connections=max_connections,
            timeout=pool_wait,
            connection_class=_connection_class(target),
            **_location(target) | connection,
        )
    return aioredis.Redis(connection_pool=pool)


async def follow_failover(client: aioredis.Redis) -> None:
    """Behind Sentinel, ask the sentinels which server is the master now; when it changed, the idle connections to
    the old one are closed, so the next commands reach the new master. Nothing for a single server.

    The hub's probe calls it: after a failover the old master keeps accepting writes until Sentinel demotes it
    (seconds later), and writes made there in between are lost; asking first keeps that window to one probe.
    """
    pool = client.connection_pool
    if isinstance(pool, _BlockingSentinelPool):
        with contextlib.suppress(RedisError, OSError):  # no sentinel answers: the master's own answers decide
            await pool.get_master_address()  # type: ignore[no-untyped-call]


def _connection_class(target: RedisTarget) -> type[Connection] | type[UnixDomainSocketConnection]:
    if target.path is not None:
        return UnixDomainSocketConnection
    return SSLConnection if target.tls else Connection


def _location(target: RedisTarget) -> dict[str, Any]:
    return {"path": target.path} if target.path is not None else {"host": target.host, "port": target.port}


def _tls(target: RedisTarget) -> dict[str, Any]:
    """The TLS keyword arguments of a connection (a Sentinel pool takes `ssl=True` to pick its TLS class)."""
    if not target.tls:
        return {}
    return {"ssl": True, **target.tls_options} if target.sentinels else dict(target.tls_options)
