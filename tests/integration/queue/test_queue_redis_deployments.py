"""The hub on production Redis deployments, against real servers: a master behind three Sentinels that fails over,
and a server that speaks only TLS and asks for a password. Both go through the hub's one client factory, so the
queue and the rate limiter are both shown to work there."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exekra.embedded import free_port
from exekra.hub.dispatch.queue import QueueUnavailable, RedisQueue

from ...redis_servers import READY_SECONDS, SERVICE, SentinelCluster, Servers
from ..protocol import eventually
from .conftest import Ledger, RunningHub, empty_tables, hub_settings, running_hub, take_one

PASSWORD = "s3cret-redis-password"
EXECUTIONS = 20


def answers(port: int, **options: object) -> bool:
    try:
        with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1, **options) as client:  # type: ignore[arg-type]
            return bool(client.ping())
    except redis.RedisError:
        return False


# --- Sentinel -------------------------------------------------------------------------------------------------


async def test_a_hub_behind_sentinel_follows_a_failover_without_losing_an_execution(
    servers: Servers, queue_database_url: str, tmp_path: Path
) -> None:
    cluster = SentinelCluster(servers)
    await eventually(
        lambda: asyncio.to_thread(cluster.ready_to_fail_over), READY_SECONDS, "the sentinels to see the replica"
    )
    await empty_tables(queue_database_url)

    async with running_hub(hub_settings(queue_database_url, tmp_path, cluster.url)) as hub:
        await hub.in_redis_mode()
        workflow_id = await hub.workflow(labels=["later"])  # no runner until the end: the executions wait in Redis
        created = await hub.create_many(workflow_id, EXECUTIONS)
        await all_waiting_in_redis(hub, created)

        with cluster.sentinel() as sentinel:
            assert sentinel.sentinel_failover(SERVICE)
        await eventually(lambda: asyncio.to_thread(lambda: cluster.master_port() == cluster.replica), 30, "failover")
        created += await hub.create_many(workflow_id, EXECUTIONS)  # during the switch: direct mode or the new master

        queue = hub.dispatcher.queue
        assert queue is not None

        async def on_the_new_master() -> bool:
            with contextlib.suppress(QueueUnavailable, redis.RedisError):
                return bool((await queue.redis.info("server"))["tcp_port"] == cluster.replica)
            return False

        await eventually(on_the_new_master, 15, "the hub to reach the new master")
        await all_waiting_in_redis(hub, created)  # what the old master took in its last moments was reconciled
        assert (await queue.redis.info("replication"))["role"] == "master"
        assert hub.dispatcher.mode_changes >= 2, "the hub went through direct mode to reconcile"
        await expect_every_execution_completed_once(hub, created)


# --- TLS and a password ---------------------------------------------------------------------------------------


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made for the test."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exekra test redis")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture
async def tls_redis(servers: Servers, tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """A Redis that speaks only TLS (its plain port is off) and asks for a password; its port and CA file."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    servers.start(
        "tls",
        *("--port", "0", "--bind", "127.0.0.1", "--tls-port", str(port), "--requirepass", PASSWORD),
        *("--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert)),
        *("--tls-auth-clients", "no"),
    )
    tls = {"ssl": True, "ssl_ca_certs": str(cert), "password": PASSWORD}
    await eventually(lambda: asyncio.to_thread(answers, port, **tls), 20, "the TLS Redis to answer")
    yield port, cert


async def test_rediss_with_a_password_carries_the_queue_and_the_rate_limiter(
    tls_redis: tuple[int, Path], queue_database_url: str, tmp_path: Path
) -> None:
    port, ca = tls_redis
    await empty_tables(queue_database_url)
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"

    async with running_hub(hub_settings(queue_database_url, tmp_path, url)) as hub:
        await hub.in_redis_mode()
        workflow_id = await hub.workflow(labels=["later"])
        created = await hub.create_many(workflow_id, 3)
        queue = await all_waiting_in_redis(hub, created)
        assert await queue.redis.keys("exekra:rl*"), "the rate limiter counts in the same Redis"
        await expect_every_execution_completed_once(hub, created)


async def test_a_wrong_redis_password_leaves_the_hub_in_direct_mode(
    tls_redis: tuple[int, Path], queue_database_url: str, tmp_path: Path
) -> None:
    port, ca = tls_redis
    await empty_tables(queue_database_url)
    url = f"rediss://:not-the-password@127.0.0.1:{port}/0?ssl_ca_certs={ca}"

    async with running_hub(hub_settings(queue_database_url, tmp_path, url)) as hub:
        assert await hub.queue_mode() == "direct"
        created = await hub.create_many(await hub.workflow(labels=["later"]), 2)
        await expect_every_execution_completed_once(hub, created)


async def all_waiting_in_redis(hub: RunningHub, created: list[str]) -> RedisQueue:
    """Wait until the hub is in Redis mode with exactly `created` waiting in its queue; the queue."""
    queue = hub.dispatcher.queue
    assert queue is not None

    async def all_waiting() -> bool:
        try:
            return hub.dispatcher.mode == "redis" and set(await queue.waiting_ids()) == {uuid.UUID(i) for i in created}
        except QueueUnavailable:  # the test's reads meet the failover too
            return False

    await eventually(all_waiting, 30, "every execution waiting in Redis")
    return queue


async def expect_every_execution_completed_once(hub: RunningHub, created: list[str]) -> None:
    runner = await hub.runner(labels=["later"])
    ledger = Ledger()
    for _ in created:
        assert await take_one(runner, ledger, wait=5) is not None
    assert await take_one(runner, ledger) is None
    assert set(ledger.completions) == set(created) and set(ledger.completions.values()) == {1}
