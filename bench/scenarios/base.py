"""What every scenario gets (the context) and gives back (a result with rows for the table)."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bench.client import Api, session
from bench.infra import ADMIN_EMAIL, ADMIN_PASSWORD, HubProcess, Servers, UpProcess, running_hub, running_up

if TYPE_CHECKING:
    from bench.peers.prefect_peer import PrefectPeer


@dataclass
class Context:
    servers: Servers
    hub_src: Path
    quick: bool
    results_dir: Path
    profile: bool = False
    peer: PrefectPeer | None = None
    connected_runners: int | None = None
    hub_workers: int = 1
    statements: bool = False  # PostgreSQL counts statements (pg_stat_statements): `bench.statements`
    up: bool = False  # the hub as `exekra up` starts it (`bench.infra.UpProcess`), not on `servers`
    done: dict[str, Result] = field(default_factory=dict)  # this run's scenarios so far, by name

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full


@dataclass
class Row:
    """One line of the results table."""

    metric: str
    exekra: float | None
    unit: str
    target: str = ""
    ok: bool | None = None
    prefect: float | None = None  # the peer's figure: Prefect's, unless `peer_name` names another peer
    peer_name: str = "Prefect"

    def peer(self, name: str, value: float | None) -> Row:
        """Fill the peer column with another peer's figure."""
        self.peer_name, self.prefect = name, value
        return self

    @property
    def ratio(self) -> float | None:
        """Prefect / Exekra: how many times better Exekra is (for times; inverted for rates by the caller)."""
        if self.prefect is None or self.exekra is None or not self.exekra or math.isnan(self.exekra):
            return None
        return self.prefect / self.exekra


@dataclass
class Result:
    name: str
    status: str = "ok"  # ok | pending | failed
    note: str = ""
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    charts: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, metric: str, exekra: float | None, unit: str, target: str = "", ok: bool | None = None) -> Row:
        row = Row(metric, exekra, unit, target, ok)
        self.rows.append(row)
        return row


async def attach_peer(ctx: Context, result: Result, workload: str) -> None:
    """Run the peer's version of this workload and fill its column; a peer failure is noted, not raised."""
    if ctx.peer is None:
        return
    import traceback

    try:
        await getattr(ctx.peer, f"attach_{workload}")(result)
    except Exception as exc:  # the Exekra figures stand on their own
        traceback.print_exc()
        result.details["prefectError"] = f"{type(exc).__name__}: {exc}"[:2000]
        result.note = (result.note + "; " if result.note else "") + f"Prefect run failed: {type(exc).__name__}"


@contextlib.asynccontextmanager
async def exekra_hub(
    ctx: Context, name: str, *, redis: bool = True, extra_env: dict[str, str] | None = None, http_limit: int = 0
) -> AsyncIterator[tuple[HubProcess | UpProcess, Api, aiohttp.ClientSession]]:
    """A fresh hub on a fresh database, an HTTP session and the bootstrapped admin's API client; with `ctx.up`, a
    fresh `exekra up` and its admin's (which takes no `redis` or `extra_env`)."""
    started: contextlib.AbstractContextManager[HubProcess | UpProcess]
    if ctx.up:
        if not redis or extra_env:
            raise ValueError(f"{name}: a hub without Redis or with settings of its own cannot be `exekra up`'s")
        started = running_up(ctx.hub_src, ctx.servers.workdir, name, ctx.hub_workers)
    else:
        started = running_hub(ctx.servers, ctx.hub_src, name, redis=redis, extra_env=extra_env, workers=ctx.hub_workers)
    with started as hub:
        try:
            async with session(limit=http_limit) as http:
                api = Api(http, hub.url)
                if ctx.up:
                    from exekra.up import ADMIN_EMAIL as UP_ADMIN_EMAIL  # the hub's source, on sys.path (bench.cli)

                    await api.login(UP_ADMIN_EMAIL, ADMIN_PASSWORD)
                else:
                    await api.bootstrap(ADMIN_EMAIL, ADMIN_PASSWORD)
                yield hub, api, http
        finally:
            # The hub's own log outlives its home (a temporary directory): kept beside the results.
            if hub.log_path is not None and hub.log_path.exists():
                ctx.results_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(hub.log_path, ctx.results_dir / f"hub-{name}.log")


@contextlib.contextmanager
def py_spy(ctx: Context, pid: int, name: str, result: Result) -> Any:
    """Record a py-spy profile of `pid` while the block runs (only with --profile)."""
    if not ctx.profile:
        yield
        return

    spy = shutil.which("py-spy") or str(Path(__import__("sys").executable).with_name("py-spy"))
    svg = ctx.results_dir / f"profile-{name}.svg"
    raw = ctx.results_dir / f"profile-{name}.txt"
    procs = [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "50",
                "--nonblocking",
                "--subprocesses",  # the workers, when the hub runs several
                "--function",
                "--format",
                fmt,
                "-o",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fmt, out in (("flamegraph", svg), ("raw", raw))
    ]
    try:
        yield
    finally:
        import signal

        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        time.sleep(0.1)
        if raw.exists():
            # One profile per scenario keeps the key "profile"; several (endpoints: one per endpoint) are named.
            key = "profile" if name == result.name else f"profile {name}"
            result.details[key] = {"svg": svg.name, "raw": raw.name, **top_frames(raw)}
            result.charts.append(svg.name)


def top_frames(raw: Path, count: int = 25) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        samples = int(n)
        total += samples
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples

    def top(table: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(table.items(), key=lambda kv: -kv[1])[:count]
        return [(frame, round(100 * n / max(1, total), 1)) for frame, n in ranked]

    return {"samples": total, "topSelf": top(own), "topInclusive": top(inclusive)}
