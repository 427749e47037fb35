"""REDIS_URL, read in one place (`exekra.redis_url`): each form the docs promise, and one clear complaint for each
malformed one."""

from __future__ import annotations

import pytest

from exekra.redis_url import InvalidRedisUrl, RedisTarget, parse_redis_url


def test_a_plain_url_names_host_port_and_database() -> None:
    assert parse_redis_url("redis://cache:6380/2") == RedisTarget(host="cache", port=6380, db=2)
    assert parse_redis_url("redis://cache") == RedisTarget(host="cache", port=6379, db=0)


def test_a_password_and_an_acl_user_are_read_and_unquoted() -> None:
    target = parse_redis_url("redis://:p%40ss@cache:6379/0")
    assert (target.username, target.password, target.auth) == (None, "p@ss", {"password": "p@ss"})
    assert parse_redis_url("redis://exekra:pw@cache/0").auth == {"username": "exekra", "password": "pw"}


def test_rediss_is_tls_with_its_certificate_options() -> None:
    target = parse_redis_url("rediss://cache:6380/0?ssl_ca_certs=/etc/exekra/ca.pem&ssl_check_hostname=false")
    assert target.tls and target.port == 6380
    assert target.tls_options == {"ssl_ca_certs": "/etc/exekra/ca.pem", "ssl_check_hostname": False}


def test_a_unix_socket_takes_its_database_in_the_query() -> None:
    assert parse_redis_url("unix:///run/redis/redis.sock?db=3") == RedisTarget(path="/run/redis/redis.sock", db=3)


def test_a_sentinel_url_lists_the_sentinels_the_master_name_and_the_database() -> None:
    target = parse_redis_url("redis+sentinel://:pw@s1:26379,s2,[::1]:26380/mymaster/4?sentinel_password=spw")
    assert target.sentinels == (("s1", 26379), ("s2", 26379), ("::1", 26380))
    assert (target.service, target.db, target.password) == ("mymaster", 4, "pw")
    assert target.sentinel_auth == {"password": "spw"}
    assert not target.tls


def test_rediss_sentinel_is_tls_to_the_sentinels_and_the_master() -> None:
    target = parse_redis_url("rediss+sentinel://s1:26379/mymaster?ssl_ca_certs=/ca.pem")
    assert target.tls and target.tls_options == {"ssl_ca_certs": "/ca.pem"} and target.db == 0


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://cache:6379", "must start with one of redis://"),
        ("redis://cache:99999/0", "invalid port '99999' for host 'cache'"),
        ("redis://cache:6379/zero", "database must be a number, got 'zero'"),
        ("redis://cache:6379/0/1", "only a database number may follow the host"),
        ("redis://cache:6379?db=1", "the database number goes in the path"),
        ("redis://cache/0?ssl_ca_certs=/ca.pem", "option 'ssl_ca_certs' needs TLS: use rediss://"),
        ("rediss://cache/0?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of required, optional, none"),
        ("redis://cache/0?socket_timeout=9", "unknown option 'socket_timeout'"),
        ("redis+sentinel://s1:26379,s2:26379", "redis+sentinel:// needs the master's name"),
        ("redis+sentinel://s1:26379/mymaster/0/x", "takes only /service[/db] after the sentinels"),
        ("redis+sentinel://s1:26379,:26379/mymaster", "a host name is missing"),
        ("unix://", "unix:// needs the socket's path"),
    ],
)
def test_a_malformed_url_is_refused_with_what_is_wrong(url: str, problem: str) -> None:
    with pytest.raises(InvalidRedisUrl) as refused:
        parse_redis_url(url)
    assert problem in str(refused.value)
