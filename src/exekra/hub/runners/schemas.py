"""Runner request bodies, protocol bodies and API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from exekra.hub.executions.models import ExecutionStatus
from exekra.hub.executions.queries import LogLine as StoredLine
from exekra.hub.executions.schemas import ExecutionMetrics
from exekra.hub.runners.models import Runner, RunnerMetric, RunnerStatus
from exekra.hub.schemas import ApiAnswer, ApiModel, PageInfo
from exekra.workflow.activities.context import NodeEvent

Label = Field(min_length=1, max_length=100)


class NewRunner(ApiModel):
    name: str = Field(min_length=1, max_length=200)
    type: str | None = Field(default=None, max_length=100)
    labels: list[str] = Field(default_factory=list, max_length=50)


class RunnerPatch(ApiModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    type: str | None = Field(default=None, max_length=100)
    labels: list[str] | None = Field(default=None, max_length=50)
    enabled: bool | None = None


class ActivityEntry(ApiModel):
    """One activity a runner declares: its catalogue entry (`exekra.workflow.catalogue.catalogue()`)."""

    name: str = Field(min_length=1, max_length=200)
    category: str = Field(default="Plugins", max_length=200)
    description: str = ""
    params: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    outputs: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    capability: str | None = Field(default=None, max_length=100)
    package: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=64)


class CatalogueBody(ApiModel):
    """What a runner can run (`RunnerCatalogue.to_dict()`): its capabilities and activities, and their digest."""

    capabilities: list[str] = Field(default_factory=list, max_length=100)
    activities: list[ActivityEntry] = Field(default_factory=list, max_length=2000)
    digest: str | None = Field(default=None, max_length=64)


class RunnerAuthBody(ApiModel):
    machine_key: str = Field(min_length=1, max_length=200)
    machine_secret: str = Field(min_length=1, max_length=200)
    hostname: str | None = Field(default=None, max_length=255)
    os: str | None = Field(default=None, max_length=255)
    version: str | None = Field(default=None, max_length=64)
    # Absent (an older runner): it is taken to declare the built-ins that need no capability.
    catalogue: CatalogueBody | None = None


class MachineMetrics(ApiModel):
    """A runner machine's load, as a heartbeat reports it and the runner's API shows it."""

    cpu_percent: float | None = Field(default=None, ge=0, le=100_000)
    memory_percent: float | None = Field(default=None, ge=0, le=100)
    memory_used_mb: float | None = Field(default=None, ge=0)
    disk_percent: float | None = Field(default=None, ge=0, le=100)
    disk_free_gb: float | None = Field(default=None, ge=0)


class HeartbeatBody(MachineMetrics):
    execution_id: str | None = Field(default=None, max_length=64)
    # The digest of what the runner declared; the hub answers `catalogueWanted` when it holds another one.
    catalogue_digest: str | None = Field(default=None, max_length=64)
    # The whole declaration, sent only after the hub asked for it.
    catalogue: CatalogueBody | None = None


class AttemptBody(ApiModel):
    attempt: int = Field(ge=1)


class LogLine(ApiModel):
    ts: datetime | None = None
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    message: str = Field(max_length=1_000_000)
    # The top-level node the line belongs to, and on a node's start or end line what happened to it.
    node: str | None = Field(default=None, max_length=255)
    event: NodeEvent | None = None


class LogsBody(AttemptBody):
    lines: list[LogLine] = Field(default_factory=list)

    def stored_lines(self) -> list[StoredLine]:
        return [StoredLine(line.ts, line.level, line.message, line.node, line.event) for line in self.lines]


class CompleteBody(LogsBody):
    status: Literal["COMPLETED", "FAILED", "STOPPED"]
    error: str | None = Field(default=None, max_length=20_000)
    outputs: dict[str, Any] | None = None
    metrics: ExecutionMetrics = Field(default_factory=ExecutionMetrics)
    # `lines`: the log lines not sent yet (an extension of SPEC §7.3: a runner may still send them with `logs`).
    take_next: bool = Field(
        default=False,
        description="Answer the execution the hub assigns to the runner as it frees it (`next`), so that the runner "
        "starts it without polling (an extension of SPEC §7.3: without it, the runner's next poll answers it).",
    )
    wait: float = Field(
        default=0,
        ge=0,
        le=30,
        description="With `takeNext`: when nothing was assigned to the freed runner at once, hold the answer up to "
        "this many seconds (as a long poll; at most `EXEKRA_MAX_LONG_POLL_SECONDS`) for an execution assigned to it.",
    )


class ChildBody(AttemptBody):
    """A `workflow.run` call of the attempt: the child to start (`exekra.hub.executions.children`)."""

    key: str = Field(
        min_length=1,
        max_length=255,
        description="The call's key, unique in the parent (`<node>:<n>`): a repeated request answers the child "
        "the first one started.",
    )
    workflow: str = Field(min_length=1, max_length=200, description="The child's workflow: its name or id.")
    inputs: dict[str, Any] = Field(default_factory=dict)
    version: int | None = Field(
        default=None, ge=1, description="A version number (once published); else the published one."
    )


# --- the runner protocol's answers (SPEC §7.3). Documented, not validated per request: these routes are the hot
# path. The hub's integration tests and the runner's fake hub hold the answers to these models.


class RunnerAuthAnswer(ApiAnswer):
    token: str
    expires_at: datetime
    runner_id: str
    runner_name: str
    heartbeat_interval_seconds: float
    poll_interval_seconds: float
    max_long_poll_seconds: float
    report_interval_seconds: float
    artifact_max_bytes: int
    """The largest file the hub stores as an artifact: the runner does not send a larger one."""
    hub_version: str
    # The hub stores log lines sent with `complete` (an extension of SPEC §7.3): a short execution is then poll,
    # start, complete. Absent (older hubs): the runner sends every line with `logs`.
    complete_takes_lines: bool = False
    # `complete` with `takeNext` answers the execution assigned to the runner as it was freed (an extension of SPEC
    # §7.3): a short execution is then start, complete. Absent (older hubs): the runner polls for it.
    complete_hands_next: bool = False


class HeartbeatAnswer(ApiAnswer):
    status: RunnerStatus
    stop_execution_ids: list[str]
    catalogue_wanted: bool
    """The heartbeat's `catalogueDigest` is not the one the hub holds: send `catalogue` with the next heartbeat."""


class WorkflowRef(ApiAnswer):
    id: str
    name: str


class VersionRef(ApiAnswer):
    id: str
    number: int
    definition: dict[str, Any]


class HeldExecution(ApiAnswer):
    """The execution a runner holds, as `poll` hands it over: everything needed to run it."""

    id: str
    attempt: int
    status: Literal[ExecutionStatus.ASSIGNED, ExecutionStatus.RUNNING]
    inputs: dict[str, Any]
    timeout_seconds: int | None
    workflow: WorkflowRef
    version: VersionRef


class PollAnswer(ApiAnswer):
    execution: HeldExecution


class ExecutionStatusAnswer(ApiAnswer):
    """`start` and `complete`: the execution's status after the call."""

    status: ExecutionStatus


class CompleteAnswer(ExecutionStatusAnswer):
    """`complete`: the execution's status after the call; with `takeNext`, the execution assigned to the runner as
    it was freed, as a poll answers it (`null`: none)."""

    next: HeldExecution | None = None


class LogsAnswer(ApiAnswer):
    stop_requested: bool


class RunnerCredential(ApiAnswer):
    name: str
    type: str
    fields: dict[str, str]


class RunnerCredentialAnswer(ApiAnswer):
    credential: RunnerCredential


# --- the runners' API shapes


class RunnerOut(ApiAnswer):
    id: str
    name: str
    machine_key: str
    type: str | None
    labels: list[str]
    status: RunnerStatus
    enabled: bool
    hostname: str | None
    os: str | None
    version: str | None
    last_heartbeat_at: datetime | None
    metrics: MachineMetrics
    current_execution_id: str | None
    activities: list[str]
    """The activities the runner declared at its last sign-in (an older runner: the built-ins that need no
    capability)."""
    capabilities: list[str]
    """Its capabilities, such as `browser` when a Chromium was found."""
    created_at: datetime


class RunnerAnswer(ApiAnswer):
    runner: RunnerOut


class RunnerPage(PageInfo):
    runners: list[RunnerOut]


class RunnerWithSecret(ApiAnswer):
    """Registration and regenerate-secret: the machine secret is shown only in this answer."""

    runner: RunnerOut
    machine_key: str
    machine_secret: str


class MetricSample(MachineMetrics):
    ts: datetime


class RunnerMetricsAnswer(ApiAnswer):
    metrics: list[MetricSample]


def runner_to_api(r: Runner) -> dict[str, Any]:
    return {
        "id": str(r.id),
        "name": r.name,
        "machineKey": r.machine_key,
        "type": r.type,
        "labels": list(r.labels),
        "status": r.status,
        "enabled": r.enabled,
        "hostname": r.hostname,
        "os": r.os,
        "version": r.version,
        "lastHeartbeatAt": r.last_heartbeat_at,
        "metrics": {
            "cpuPercent": r.cpu_percent,
            "memoryPercent": r.memory_percent,
            "memoryUsedMb": r.memory_used_mb,
            "diskPercent": r.disk_percent,
            "diskFreeGb": r.disk_free_gb,
        },
        "currentExecutionId": str(r.current_execution_id) if r.current_execution_id else None,
        "activities": list(r.activities),
        "capabilities": list(r.capabilities),
        "createdAt": r.created_at,
    }


def metric_to_api(m: RunnerMetric) -> dict[str, Any]:
    return {
        "ts": m.ts,
        "cpuPercent": m.cpu_percent,
        "memoryPercent": m.memory_percent,
        "memoryUsedMb": m.memory_used_mb,
        "diskPercent": m.disk_percent,
        "diskFreeGb": m.disk_free_gb,
    }
