"""psutil sampling: machine metrics for heartbeats and per-execution process-tree metrics.

The functions here block (they read /proc); the agent calls them through `asyncio.to_thread`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

TREE_MARKER_VARIABLE = "EXEKRA_PROCESS_TREE"
MIB = 1024 * 1024
GIB = 1024 * 1024 * 1024

_Key = tuple[int, float]  # (pid, create time): stable identity even if a pid is reused


def prime_cpu_percent() -> None:
    """Start psutil's system-wide CPU measurement so the first heartbeat reports a real value."""
    psutil.cpu_percent(interval=None)


def system_metrics(path: Path) -> dict[str, float]:
    """Heartbeat metrics: CPU % since the previous call, memory, and the disk that holds `path`."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(_existing_ancestor(path)))
    return {
        "cpuPercent": round(psutil.cpu_percent(interval=None), 1),
        "memoryPercent": round(memory.percent, 1),
        "memoryUsedMb": round((memory.total - memory.available) / MIB, 1),
        "diskPercent": round(disk.percent, 1),
        "diskFreeGb": round(disk.free / GIB, 2),
    }


def _existing_ancestor(path: Path) -> Path:
    path = path.expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@dataclass(frozen=True)
class ExecutionMetrics:
    """CPU in percent of one core (a busy two-thread process shows 200) and resident memory in MiB."""

    cpu_avg: float = 0.0
    cpu_peak: float = 0.0
    mem_avg_mb: float = 0.0
    mem_peak_mb: float = 0.0

    def to_api(self) -> dict[str, float]:
        """The `metrics` object of the `complete` call."""
        return {
            "cpuAvg": round(self.cpu_avg, 2),
            "cpuPeak": round(self.cpu_peak, 2),
            "memAvgMb": round(self.mem_avg_mb, 2),
            "memPeakMb": round(self.mem_peak_mb, 2),
        }


@dataclass(frozen=True)
class _Snapshot:
    at: float
    cpu: dict[_Key, float]
    parent: dict[_Key, _Key | None]


class ProcessTreeSampler:
    """Samples the CPU time and RSS of a process and all its descendants.

    CPU per interval is the growth of each member's cumulative CPU time, including the time of children it
    has already waited for, so short-lived commands run by the workflow still count. When a member vanishes
    and an ancestor in the tree reaped it, its earlier time is subtracted, because the ancestor's
    `children_*` time now includes it.
    """

    def __init__(self, root_pid: int) -> None:
        try:
            self._root: psutil.Process | None = psutil.Process(root_pid)
        except psutil.Error:
            self._root = None
        self._seen: dict[_Key, psutil.Process] = {}
        self._last: _Snapshot | None = None
        self._cpu_percents: list[float] = []
        self._cpu_seconds = 0.0
        self._elapsed = 0.0
        self._rss_samples: list[float] = []
        self._lock = threading.Lock()  # samples come from worker threads (asyncio.to_thread)

    def sample(self) -> None:
        """Take one sample; silently does nothing once the tree is gone. Thread-safe."""
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        members = self._tree()
        if not members:
            return
        now = time.monotonic()
        cpu: dict[_Key, float] = {}
        parent_pid: dict[_Key, int] = {}
        rss = 0
        for process in members:
            try:
                with process.oneshot():
                    key = (process.pid, process.create_time())
                    times = process.cpu_times()
                    rss += process.memory_info().rss
                    parent_pid[key] = process.ppid()
            except psutil.Error:
                continue
            cpu[key] = times.user + times.system + times.children_user + times.children_system
            self._seen[key] = process
        by_pid = {key[0]: key for key in cpu}
        parents = {key: by_pid.get(ppid) for key, ppid in parent_pid.items()}
        self._rss_samples.append(rss / MIB)
        if self._last is not None:
            self._add_interval(self._last, now, cpu)
        self._last = _Snapshot(now, cpu, parents)

    def _add_interval(self, previous: _Snapshot, now: float, cpu: dict[_Key, float]) -> None:
        used = sum(value - previous.cpu.get(key, 0.0) for key, value in cpu.items())
        for key, value in previous.cpu.items():
            if key not in cpu and _reaped_inside(key, previous.parent, cpu):
                used -= value
        elapsed = now - previous.at
        if elapsed <= 0:
            return
        used = max(0.0, used)
        self._cpu_percents.append(used / elapsed * 100)
        self._cpu_seconds += used
        self._elapsed += elapsed

    def _tree(self) -> list[psutil.Process]:
        if self._root is None:
            return []
        try:
            return [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return []

    def metrics(self) -> ExecutionMetrics:
        """Time-weighted CPU average, CPU peak over one interval, mean and peak tree RSS."""
        with self._lock:
            rss = list(self._rss_samples)
            cpu_seconds, elapsed, peak = self._cpu_seconds, self._elapsed, max(self._cpu_percents, default=0.0)
        return ExecutionMetrics(
            cpu_avg=cpu_seconds / elapsed * 100 if elapsed else 0.0,
            cpu_peak=peak,
            mem_avg_mb=sum(rss) / len(rss) if rss else 0.0,
            mem_peak_mb=max(rss, default=0.0),
        )

    def survivors(self) -> list[psutil.Process]:
        """Every process ever seen in the tree that is still running (pid reuse is detected)."""
        with self._lock:
            seen = list(self._seen.values())
        alive = []
        for process in seen:
            try:
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(process)
            except psutil.Error:
                continue
        return alive


def marked_processes(marker: str) -> list[psutil.Process]:
    """Processes whose environment has TREE_MARKER_VARIABLE=marker (those we are allowed to read)."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(TREE_MARKER_VARIABLE) == marker:
                found.append(process)
        except psutil.Error:
            continue
    return found


def _reaped_inside(key: _Key, parents: dict[_Key, _Key | None], alive: dict[_Key, float]) -> bool:
    ancestor = parents.get(key)
    while ancestor is not None:
        if ancestor in alive:
            return True
        ancestor = parents.get(ancestor)
    return False
