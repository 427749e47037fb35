"""What the API returns, as typed models. Field names are snake_case here and camelCase on the wire;
fields a newer hub adds are kept (`model_extra`) rather than refused."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

ExecutionStatus = Literal["QUEUED", "ASSIGNED", "RUNNING", "COMPLETED", "FAILED", "STOPPED"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"COMPLETED", "FAILED", "STOPPED"})
TriggerType = Literal["SCHEDULE", "WEBHOOK"]
OverlapPolicy = Literal["allow", "skip", "queue_one"]
VersionState = Literal["draft", "published", "superseded"]
RetryKind = Literal["FAILED", "TIMEOUT", "RUNNER_LOST"]

T = TypeVar("T")


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class User(Model):
    id: str
    email: str
    name: str = ""
    role: str
    disabled: bool = False
    created_at: datetime | None = None


class Session(Model):
    """A sign-in: the user and their session token."""

    user: User
    token: str


class VersionSummary(Model):
    id: str
    workflow_id: str
    number: int
    published: bool
    state: VersionState | None = None
    published_at: datetime | None = None
    created_by: str | None = None
    created_at: datetime


class Version(VersionSummary):
    definition: dict[str, Any] | None = None


class RetryPolicy(Model):
    """When the hub retries a failed execution: up to `attempts` times, the n-th (from 0) after
    `backoff_seconds * backoff_factor ** n` seconds, for the kinds of failure in `on`."""

    attempts: int
    backoff_seconds: float = 0
    backoff_factor: float = 1
    on: list[RetryKind]


class Workflow(Model):
    id: str
    name: str
    description: str = ""
    runner_type: str | None = None
    labels: list[str] = []
    priority: int = 5
    timeout_seconds: int | None = None
    retry: RetryPolicy | None = None
    max_concurrent: int | None = None  # at most this many ASSIGNED or RUNNING at once, per concurrency key value
    concurrency_key: str | None = None  # a template over the inputs, e.g. "{{ inputs.customer }}"
    archived: bool = False
    published_version: int | None = None
    latest_version: int = 0
    created_at: datetime
    updated_at: datetime
    versions: list[VersionSummary] | None = None


class WorkflowWithVersion(Model):
    """The answer of create, publish and import: the workflow and the version concerned."""

    workflow: Workflow
    version: Version


class ExecutionMetrics(Model):
    cpu_avg: float | None = None
    cpu_peak: float | None = None
    mem_avg_mb: float | None = None
    mem_peak_mb: float | None = None


class Execution(Model):
    id: str
    workflow_id: str
    workflow_name: str | None = None
    version_id: str
    version_number: int | None = None
    runner_id: str | None = None
    runner_name: str | None = None
    status: ExecutionStatus
    priority: int
    attempt: int
    triggered_by: str | None = None
    triggered_by_name: str | None = None
    trigger_type: str
    inputs: dict[str, Any] = {}
    outputs: dict[str, Any] | None = None
    error: str | None = None
    idempotency_key: str | None = None
    stop_requested: bool = False
    retry_of: str | None = None  # the execution this one automatically retries
    retry_attempt: int = 0  # 0: an original; n: its n-th automatic retry
    concurrency_key: str | None = None  # its group under its workflow's concurrency limit (None: no limit)
    waiting_reason: str | None = None  # why a QUEUED execution waits (no runner can run it, or its limit is reached)
    parent_id: str | None = None  # the execution whose `workflow.run` started this one (a sub-workflow)
    queued_at: datetime | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    created_at: datetime
    metrics: ExecutionMetrics = ExecutionMetrics()

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ExecutionCreated(Model):
    execution: Execution
    duplicate: bool = False


class LogLine(Model):
    seq: int
    ts: datetime
    level: str
    message: str
    node: str | None = None  # the top-level node the line belongs to
    event: str | None = None  # on a node's start or end line: started, completed, failed, skipped, stopped


class NodeRun(Model):
    """A node of an execution's version and what happened to it (`state`: NOT_REACHED, RUNNING, COMPLETED,
    FAILED, SKIPPED or STOPPED)."""

    id: str
    activity: str
    state: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None


class LogPage(Model):
    lines: list[LogLine]
    next_seq: int


class RunnerMetrics(Model):
    cpu_percent: float | None = None
    memory_percent: float | None = None
    memory_used_mb: float | None = None
    disk_percent: float | None = None
    disk_free_gb: float | None = None


class Runner(Model):
    id: str
    name: str
    machine_key: str
    type: str | None = None
    labels: list[str] = []
    status: str
    enabled: bool = True
    hostname: str | None = None
    os: str | None = None
    version: str | None = None
    last_heartbeat_at: datetime | None = None
    metrics: RunnerMetrics = RunnerMetrics()
    current_execution_id: str | None = None
    created_at: datetime


class RunnerRegistration(Model):
    """A registered runner with its machine credentials (the secret is shown only once)."""

    runner: Runner
    machine_key: str
    machine_secret: str


class Trigger(Model):
    id: str
    workflow_id: str
    type: TriggerType
    name: str
    enabled: bool
    cron_expression: str | None = None
    timezone: str | None = None
    overlap_policy: OverlapPolicy = "allow"
    inputs: dict[str, Any] = {}
    next_fire_at: datetime | None = None
    waiting_fire_at: datetime | None = None
    last_fired_at: datetime | None = None
    last_skipped_at: datetime | None = None
    last_skip_reason: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class TriggerWithToken(Model):
    """A trigger as created or rotated: a webhook's token and URL are shown only in this answer."""

    trigger: Trigger
    token: str | None = None
    url: str | None = None


AlertChannelType = Literal["EMAIL", "WEBHOOK", "SLACK"]
AlertEventType = Literal["FAILED", "TIMEOUT", "STOPPED", "RUNNER_OFFLINE"]
DeliveryStatus = Literal["PENDING", "SENDING", "SENT", "FAILED"]


class AlertChannel(Model):
    """Where alerts go; `url` is a webhook's URL or only the host of a Slack URL, `to` an email's recipients."""

    id: str
    name: str
    type: AlertChannelType
    enabled: bool
    url: str | None = None
    to: list[str] | None = None
    created_at: datetime
    updated_at: datetime


class AlertChannelWithSecret(Model):
    """A channel as created or rotated: a webhook's signing secret is shown only in this answer."""

    channel: AlertChannel
    secret: str | None = None


class AlertRule(Model):
    id: str
    name: str
    enabled: bool
    workflow_id: str | None = None
    channel_id: str
    events: list[AlertEventType]
    offline_minutes: int
    cooldown_seconds: int
    window_ends_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class AlertDelivery(Model):
    """One alert message to one channel, with its attempts (`history`) and what was sent (`payload`)."""

    id: str
    rule_id: str | None = None
    channel_id: str | None = None
    kind: Literal["ALERT", "DIGEST"]
    status: DeliveryStatus
    event_count: int
    attempts: int
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    last_http_status: int | None = None
    sent_at: datetime | None = None
    created_at: datetime
    history: list[dict[str, Any]] = []
    payload: dict[str, Any] | None = None


class WebhookCall(Model):
    execution_id: str
    status: ExecutionStatus
    duplicate: bool = False


class Health(Model):
    status: str
    database: str
    queue: str
    version: str
    instance: str | None = None
    leader: bool | None = None


class License(Model):
    """The hub's licence (`status` active or expired), or community mode (`status` community, no limits)."""

    status: Literal["active", "expired", "community"]
    hub_id: str
    licensee: str | None = None
    email: str | None = None
    max_runners: int | None = None
    expires_at: str | None = None  # the last day in force, YYYY-MM-DD (UTC)
    days_left: int | None = None
    trial: bool = False
    edition: str = "community"
    runners: int | None = None
    problem: str | None = None


class Page(Model, Generic[T]):
    """One page of a list: the items, the total count and the cursor of the next page (when keyset paged).

    Execution lists count up to the hub's cap: `total_capped` says more match than `total`. Their keyset
    pages (asked with a cursor) are not counted: `total` is then None.
    """

    items: list[T]
    total: int | None
    total_capped: bool = False
    page: int
    limit: int
    next_cursor: str | None = None
