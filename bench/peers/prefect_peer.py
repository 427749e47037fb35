"""The peer: Prefect 3.9 (server + a `serve()` runner) in its own virtual environment under bench/.peers/.

Setup, the fastest one Prefect's documentation offers for running work that is created through its API:
- `prefect server start` on 127.0.0.1 against the same embedded PostgreSQL server as the hub (its own
  database; Prefect recommends PostgreSQL over SQLite under concurrent load, and it makes durability equal),
  UI and analytics off, every client pointed at the local API: nothing leaves the machine.
- Deployments served by one `serve()` process (no separate work pool or worker process in between), polling
  every second (PREFECT_RUNNER_POLL_FREQUENCY=1, its smallest value; the default is 10). Each flow run executes
  in a child process, which is how Prefect runs deployments.

Every workload goes through Prefect's REST API from this process: `POST /api/deployments/{id}/create_flow_run`
creates, `GET /api/flow_runs/{id}` reads, and the state history gives when the runner claimed a run (PENDING)
and started it (RUNNING).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench.client import request, session
from bench.infra import BENCH_DIR, TreeSampler, cpu_seconds_between, free_port, stop_process_group, tree_cpu_seconds
from bench.stats import per_second, summarize_ms

VENV = BENCH_DIR / ".peers" / "prefect"
INSTALL_LOG = BENCH_DIR / ".peers" / "prefect-install.log"
REQUIREMENT = "prefect>=3.9,<3.10"
JOB_SECONDS = 0.010
THROUGHPUT_PRODUCERS = 8


def _wall(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class PrefectPeer:
    """Installs, starts and drives Prefect; fills the `prefect` column of the pick-up, sequential and throughput rows."""

    def __init__(self, *, quick: bool, limit: int = 8) -> None:
        self.quick = quick
        self.limit = limit
        self.servers: Any = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._sequential: dict[str, Any] | None = None
        self.version = "?"

    # --- installation ---------------------------------------------------------------------------------

    def ensure_installed(self) -> None:
        """Create the venv and `pip install prefect` once; later runs reuse it."""
        stamp = VENV / ".bench-installed"
        if not (stamp.exists() and stamp.read_text().strip() == REQUIREMENT):
            VENV.parent.mkdir(parents=True, exist_ok=True)
            with INSTALL_LOG.open("w") as log:
                if not (VENV / "bin" / "python").exists():
                    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, stdout=log, stderr=log)
                subprocess.run(
                    [str(VENV / "bin" / "pip"), "install", "--disable-pip-version-check", REQUIREMENT],
                    check=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    timeout=1800,
                )
            stamp.write_text(REQUIREMENT + "\n")
        out = subprocess.run(
            [str(VENV / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('prefect'))"],
            capture_output=True,
            text=True,
            check=True,
        )
        self.version = out.stdout.strip()

    # --- processes ------------------------------------------------------------------------------------

    def _env(self, home: Path, port: int, database_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTHONPATH", "VIRTUAL_ENV"))}
        return env | {
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_API_DATABASE_CONNECTION_URL": database_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "DO_NOT_TRACK": "1",
        }

    def _spawn(self, command: list[str], env: dict[str, str], cwd: Path, log_name: str) -> subprocess.Popen[bytes]:
        with (cwd / log_name).open("ab") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    @contextlib.asynccontextmanager
    async def running(
        self, name: str
    ) -> AsyncIterator[tuple[str, aiohttp.ClientSession, dict[str, str], dict[str, int]]]:
        """Prefect server + serve() on a fresh database; yields (api url, http, deployment ids, pids)."""
        home = self.servers.workdir / f"prefect-{name}-{uuid.uuid4().hex[:6]}"
        home.mkdir(parents=True)
        pg_url = self.servers.new_database(f"prefect_{name}")
        database_url = pg_url.replace("postgresql://", "postgresql+asyncpg://", 1)
        port = free_port()
        env = self._env(home, port, database_url)
        api = f"http://127.0.0.1:{port}/api"
        server = self._spawn(
            [str(VENV / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
            home,
            "server.log",
        )
        serve_proc: subprocess.Popen[bytes] | None = None
        try:
            async with session() as http:
                await self._wait(http, f"{api}/health", 180, server, home / "server.log")
                serve_proc = self._spawn(
                    [str(VENV / "bin" / "python"), str(BENCH_DIR / "peers" / "prefect_serve.py"), str(self.limit)],
                    env,
                    home,
                    "serve.log",
                )
                deployments = {}
                for flow in ("bench-noop", "bench-10ms"):
                    body = await self._wait(
                        http, f"{api}/deployments/name/{flow}/bench", 180, serve_proc, home / "serve.log"
                    )
                    deployments[flow] = body["id"]
                await asyncio.sleep(2.0)  # the runner's first poll
                yield api, http, deployments, {"prefect-server": server.pid, "prefect-serve": serve_proc.pid}
        finally:
            for proc in (serve_proc, server):
                await asyncio.to_thread(stop_process_group, proc)
                if proc in self._procs:
                    self._procs.remove(proc)

    async def _wait(
        self, http: aiohttp.ClientSession, url: str, limit: float, proc: subprocess.Popen[bytes], log: Path
    ) -> Any:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = await asyncio.to_thread(log.read_text)
                raise RuntimeError(f"Prefect process exited ({proc.returncode}); see {log}:\n{tail[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                status, body = await request(http, "GET", url, seconds=5)
                if status == 200:
                    return body
            await asyncio.sleep(0.5)
        raise RuntimeError(f"Prefect not ready at {url} within {limit}s; see {log}")

    def stop(self) -> None:
        for proc in list(self._procs):
            stop_process_group(proc)
        self._procs.clear()

    # --- workloads ------------------------------------------------------------------------------------

    async def _create(self, http: aiohttp.ClientSession, api: str, deployment_id: str) -> dict[str, Any]:
        status, body = await request(http, "POST", f"{api}/deployments/{deployment_id}/create_flow_run", json={})
        if status != 201:
            raise RuntimeError(f"create_flow_run -> {status}: {body}")
        return body

    async def sequential_samples(self) -> dict[str, Any]:
        """Runs of the 10 ms flow one at a time: overhead, and pick-up (claimed) / start times."""
        if self._sequential is not None:
            return self._sequential
        count, warmup = (15, 2) if self.quick else (60, 3)
        overhead, pickup, started, failed = [], [], [], 0
        async with self.running("sequential") as (api, http, deployments, _):
            for i in range(warmup + count):
                t0, t0_wall = time.perf_counter(), time.time()
                run = await self._create(http, api, deployments["bench-10ms"])
                t_resp_wall = time.time()
                deadline = t0 + 180
                state = None
                while time.perf_counter() < deadline:
                    _, body = await request(http, "GET", f"{api}/flow_runs/{run['id']}")
                    state = body.get("state_type")
                    if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                        break
                    await asyncio.sleep(0.01)
                t1 = time.perf_counter()
                if state != "COMPLETED":
                    failed += 1
                    continue
                if i < warmup:
                    continue
                overhead.append(t1 - t0 - JOB_SECONDS)
                _, states = await request(http, "GET", f"{api}/flow_run_states/", params={"flow_run_id": run["id"]})
                times = {s["type"]: _wall(s["timestamp"]) for s in states}
                if "PENDING" in times:
                    pickup.append(max(0.0, times["PENDING"] - t_resp_wall))
                if "RUNNING" in times:
                    started.append(times["RUNNING"] - t0_wall)
        self._sequential = {
            "version": self.version,
            "overhead": overhead,
            "pickup": pickup,
            "started": started,
            "failed": failed,
        }
        return self._sequential

    async def attach_pickup(self, result: Any) -> None:
        raw = await self.sequential_samples()
        s = summarize_ms(raw["pickup"])
        result.details["prefect"] = {
            "version": self.version,
            "pickupClaimedMs": s,
            "createToRunningMs": summarize_ms(raw["started"]),
            "samples": raw["pickup"],
            "note": "pick-up = the run's PENDING state (the serve() runner claimed it) minus the create response",
        }
        for row in result.rows:
            if row.metric == "pick-up p50":
                row.prefect = s["p50"]
            elif row.metric == "pick-up p99":
                row.prefect = s["p99"]

    async def attach_sequential(self, result: Any) -> None:
        raw = await self.sequential_samples()
        s = summarize_ms(raw["overhead"])
        result.details["prefect"] = {
            "version": self.version,
            "overheadMs": s,
            "failed": raw["failed"],
            "samples": raw["overhead"],
        }
        for row in result.rows:
            key = {
                "sequential overhead p50": "p50",
                "sequential overhead mean": "mean",
                "sequential overhead p99": "p99",
            }.get(row.metric.split(" (")[0])  # both ways Exekra's end is observed; Prefect's is read every 10 ms
            if key:
                row.prefect = s[key]

    async def attach_throughput(self, result: Any) -> None:
        count = 100 if self.quick else 300
        async with self.running("throughput") as (api, http, deployments, pids):
            deployment = deployments["bench-noop"]
            roots = {**pids, "postgres": self.servers.pg.pid}
            sampler = TreeSampler(roots)
            sampler.start()
            before = {name: tree_cpu_seconds(pid) for name, pid in roots.items()}
            t0, t0_wall = time.perf_counter(), time.time()
            remaining = iter(range(count))

            async def producer() -> None:
                for _ in remaining:
                    await self._create(http, api, deployment)

            await asyncio.gather(*(producer() for _ in range(THROUGHPUT_PRODUCERS)))
            t_created = time.perf_counter()
            query = {
                "deployments": {"id": {"any_": [deployment]}},
                "flow_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED"]}}},
            }
            deadline = t0 + (400 if self.quick else 900)
            done = 0
            while time.perf_counter() < deadline:
                _, done = await request(http, "POST", f"{api}/flow_runs/count", json=query)
                if done >= count:
                    break
                await asyncio.sleep(0.5)
            spent = {name: cpu_seconds_between(before[name], tree_cpu_seconds(pid)) for name, pid in roots.items()}
            await sampler.stop()
            t_load = 0.0
            ends: list[float] = []
            states: dict[str, int] = {}
            for offset in range(0, count, 200):
                _, runs = await request(
                    http,
                    "POST",
                    f"{api}/flow_runs/filter",
                    json={"deployments": {"id": {"any_": [deployment]}}, "limit": 200, "offset": offset},
                )
                for run in runs:
                    states[run["state_type"]] = states.get(run["state_type"], 0) + 1
                    if run.get("end_time") and run["state_type"] == "COMPLETED":
                        ends.append(_wall(run["end_time"]))
        completed = states.get("COMPLETED", 0)
        elapsed = (max(ends) - t0_wall) if ends else float("nan")
        rate = completed / elapsed if ends else 0.0
        cpu = {name: sampler.summary(name) for name in roots}
        result.details["prefect"] = {
            "version": self.version,
            "flowRuns": count,
            "states": states,
            "elapsedSeconds": elapsed,
            "createSeconds": t_created - t0,
            "concurrencyLimit": self.limit,
            "cpu": cpu,
            "cpuMsPerRun": {name: 1000 * s / max(1, completed) for name, s in spent.items()},
            "completionsPerSecond": per_second(ends, t0_wall),
            "cpuSeries": {
                name: [(round(t - t_load, 2), c) for t, c, _ in rows] for name, rows in sampler.samples.items()
            },
        }
        server_cpu = cpu["prefect-server"]["cpuAvgPercent"]
        for row in result.rows:
            if row.metric == "throughput":
                row.prefect = rate
            elif row.metric.startswith("hub CPU avg"):
                row.prefect = server_cpu
            elif row.metric == "PostgreSQL CPU avg":
                row.prefect = cpu["postgres"]["cpuAvgPercent"]
            elif row.metric == "hub CPU per execution":
                row.prefect = result.details["prefect"]["cpuMsPerRun"]["prefect-server"]
            elif row.metric == "PostgreSQL CPU per execution":
                row.prefect = result.details["prefect"]["cpuMsPerRun"]["postgres"]
        result.row("Prefect runner+flow processes CPU per run", None, "ms").prefect = result.details["prefect"][
            "cpuMsPerRun"
        ]["prefect-serve"]
