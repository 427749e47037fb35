"""Redis deployments made of real `redis-server` processes for tests: any set of servers, and a master with a
replica watched by three Sentinels."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from exekra.embedded import free_port, redis_server_binary

SERVICE = "mymaster"


class Servers:
    """redis-server processes started for one test, each stopped at its end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *args: str, config: str | None = None, prefix: tuple[str, ...] = ()) -> None:
        """Start `redis-server` (under `prefix`, e.g. `ip netns exec <host>`) with `args` and `config`."""
        command = [*prefix, str(redis_server_binary())]
        if config is not None:
            path = self.workdir / f"{name}.conf"
            path.write_text(config)  # a Sentinel rewrites its own configuration file
            command.append(str(path))
        log = (self.workdir / f"{name}.log").open("ab")
        command += ["--dir", str(self.workdir), "--save", "", "--appendonly", "no", *args]
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=log))

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


# A sentinel refreshes what it knows of a replica every 10 s (INFO, not configurable): a replica it first saw before
# its initial sync ended is seen in sync one refresh later. 30 s (three refreshes) ran out once on a loaded machine.
READY_SECONDS = 60


class SentinelCluster:
    def __init__(self, servers: Servers) -> None:
        self.master, self.replica = free_port(), free_port()
        self.sentinels = [free_port() for _ in range(3)]
        servers.start("master", "--port", str(self.master), "--bind", "127.0.0.1")
        servers.start(
            "replica", "--port", str(self.replica), "--bind", "127.0.0.1", "--replicaof", "127.0.0.1", str(self.master)
        )
        for port in self.sentinels:
            config = (
                f"port {port}\nbind 127.0.0.1\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            servers.start(f"sentinel-{port}", "--sentinel", config=config)

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(f'127.0.0.1:{p}' for p in self.sentinels)}/{SERVICE}/0"

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinels[0], socket_timeout=2, decode_responses=True)

    def master_port(self) -> int:
        with self.sentinel() as client:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
            return int(port)

    def ready_to_fail_over(self) -> bool:
        """Every sentinel sees the master and an in-sync replica."""
        for port in self.sentinels:
            with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, decode_responses=True) as client:
                try:
                    replicas = client.sentinel_slaves(SERVICE)
                except redis.RedisError:
                    return False
                if not any(r["is_slave"] and r.get("master-link-status") == "ok" for r in replicas):
                    return False
        return True
