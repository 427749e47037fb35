"""Hosts on one machine: a network namespace per host, joined by veth pairs to one bridge in the root namespace
(which has the network's first address, so the test itself reaches every host). Needs root and iproute2."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Network:
    """Namespaces `<tag>-<host>` on 10.231.<subnet>.0/24; host `name` has the address ending in `hosts[name]`."""

    hosts: dict[str, int]
    tag: str = field(default_factory=lambda: f"exk{secrets.token_hex(2)}")
    subnet: int = field(default_factory=lambda: 1 + secrets.randbelow(250))

    @property
    def bridge(self) -> str:
        return f"{self.tag}br"

    @property
    def gateway(self) -> str:
        """The root namespace's address: where the test, and the servers it runs there, are reached."""
        return f"10.231.{self.subnet}.1"

    def address(self, host: str) -> str:
        return f"10.231.{self.subnet}.{self.hosts[host]}"

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def prefix(self, host: str) -> tuple[str, ...]:
        """The command prefix that runs a process on `host`."""
        return ("ip", "netns", "exec", self.namespace(host))

    def _link(self, host: str) -> str:
        return f"{self.tag}v{self.hosts[host]}"  # the root side of the host's veth pair

    def create(self) -> None:
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")
        for host in self.hosts:
            namespace, link, peer = self.namespace(host), self._link(host), f"{self.tag}p{self.hosts[host]}"
            ip("netns", "add", namespace)
            ip("link", "add", link, "type", "veth", "peer", "name", peer)
            ip("link", "set", peer, "netns", namespace)
            ip("-n", namespace, "link", "set", peer, "name", "eth0")
            ip("-n", namespace, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            ip("link", "set", link, "master", self.bridge, "up")

    def cut(self, host: str) -> None:
        """Take the host's link down: its packets go nowhere, and nobody is told."""
        ip("link", "set", self._link(host), "down")

    def restore(self, host: str) -> None:
        ip("link", "set", self._link(host), "up")

    def destroy(self) -> None:
        """Remove every namespace (their veth pairs go with them) and the bridge; what is already gone is skipped."""
        for host in self.hosts:
            with contextlib.suppress(subprocess.CalledProcessError):
                ip("netns", "del", self.namespace(host))
        with contextlib.suppress(subprocess.CalledProcessError):
            ip("link", "del", self.bridge)


@contextlib.contextmanager
def network(hosts: dict[str, int]) -> Iterator[Network]:
    made = Network(hosts)
    try:
        made.create()
        yield made
    finally:
        made.destroy()
