"""`REDIS_URL`, read in one place: a single server, a server over TLS, a Unix socket, or a master found through
Redis Sentinel. The settings check it at start (one clear line for a malformed URL); the hub's Redis clients
connect with what it yields (`exekra.hub.redis_client`).

    redis://[[user]:password@]host[:port][/db]
    rediss://[[user]:password@]host[:port][/db][?ssl_ca_certs=/path/ca.pem]          TLS
    unix://[[user]:password@]/path/redis.sock[?db=N]
    redis+sentinel://[[user]:password@]host:port[,host:port…]/service[/db]           Sentinel
    rediss+sentinel://…                                                              Sentinel, all over TLS

The user and password are the Redis master's (ACL user or `requirepass`). Sentinels that require a password of
their own take `sentinel_password` (and `sentinel_username`) in the query. TLS options in the query:
`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs` (`required`, `optional` or `none`) and
`ssl_check_hostname` (`true`/`false`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379
SCHEMES = ("redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel")
TLS_OPTIONS = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname")
SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")
CERT_REQS = ("required", "optional", "none")


class InvalidRedisUrl(ValueError):
    """REDIS_URL cannot be used; the message says why (without the URL, which may hold a password)."""


@dataclass(frozen=True)
class RedisTarget:
    """Where the hub's Redis is and how to talk to it."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    path: str | None = None  # a Unix socket instead of host and port
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    tls_options: dict[str, str | bool] = field(default_factory=dict)
    sentinels: tuple[tuple[str, int], ...] = ()  # set: `service` is the master's name in Sentinel
    service: str | None = None
    sentinel_auth: dict[str, str] = field(default_factory=dict)

    @property
    def auth(self) -> dict[str, str]:
        """The master's credentials, as redis-py's keyword arguments."""
        given = {"username": self.username, "password": self.password}
        return {name: value for name, value in given.items() if value}


def parse_redis_url(url: str) -> RedisTarget:
    """The target of a Redis URL (forms in the module docstring); `InvalidRedisUrl` says what is wrong."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise InvalidRedisUrl(f"must start with one of {', '.join(s + '://' for s in SCHEMES)}")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    options = _options(parts.query)
    tls = scheme.startswith("rediss")
    tls_options = _tls_options(options, tls)
    base = RedisTarget(
        username=unquote(username) or None, password=unquote(password) or None, tls=tls, tls_options=tls_options
    )
    if scheme == "unix":
        if not parts.path:
            raise InvalidRedisUrl("unix:// needs the socket's path, e.g. unix:///run/redis/redis.sock")
        return replace(base, path=unquote(parts.path), db=_db(options.pop("db", "0")))
    if "db" in options:
        raise InvalidRedisUrl("the database number goes in the path (redis://host:6379/0), not in ?db=")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if scheme.endswith("+sentinel"):
        if not segments:
            raise InvalidRedisUrl("redis+sentinel:// needs the master's name: …:26379/mymaster[/db]")
        if len(segments) > 2:
            raise InvalidRedisUrl("redis+sentinel:// takes only /service[/db] after the sentinels")
        sentinel_auth = {
            name.removeprefix("sentinel_"): options.pop(name) for name in SENTINEL_OPTIONS if name in options
        }
        return replace(
            base,
            sentinels=tuple(_address(a, DEFAULT_SENTINEL_PORT) for a in hosts.split(",")),
            service=segments[0],
            db=_db(segments[1] if len(segments) == 2 else "0"),
            sentinel_auth=sentinel_auth,
        )
    if len(segments) > 1:
        raise InvalidRedisUrl("only a database number may follow the host, e.g. redis://host:6379/0")
    host, port = _address(hosts, DEFAULT_PORT)
    return replace(base, host=host, port=port, db=_db(segments[0] if segments else "0"))


def _options(query: str) -> dict[str, str]:
    options = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(options) - {*TLS_OPTIONS, *SENTINEL_OPTIONS, "db"})
    if unknown:
        raise InvalidRedisUrl(f"unknown option {unknown[0]!r}")
    return options


def _tls_options(options: dict[str, str], tls: bool) -> dict[str, str | bool]:
    given = {name: options.pop(name) for name in TLS_OPTIONS if name in options}
    if given and not tls:
        raise InvalidRedisUrl(f"option {next(iter(given))!r} needs TLS: use rediss://")
    result: dict[str, str | bool] = dict(given)
    if "ssl_cert_reqs" in given and given["ssl_cert_reqs"] not in CERT_REQS:
        raise InvalidRedisUrl(f"ssl_cert_reqs must be one of {', '.join(CERT_REQS)}")
    if "ssl_check_hostname" in given:
        flag = given["ssl_check_hostname"].lower()
        if flag not in ("true", "false"):
            raise InvalidRedisUrl("ssl_check_hostname must be true or false")
        result["ssl_check_hostname"] = flag == "true"
    return result


def _address(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise InvalidRedisUrl("a host name is missing")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidRedisUrl(f"invalid port {port_text!r} for host {host!r}")
    return host, int(port_text)


def _db(text: str) -> int:
    if not text.isdigit():
        raise InvalidRedisUrl(f"database must be a number, got {text!r}")
    return int(text)
