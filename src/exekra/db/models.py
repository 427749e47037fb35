"""Imports every table so `Base.metadata` is complete (Alembic and tests use it)."""

from exekra.db.base import Base
from exekra.hub.alerts.models import AlertChannel, AlertDelivery, AlertEvent, AlertRule
from exekra.hub.artifacts.models import Artifact, ArtifactChunk
from exekra.hub.audit.models import AuditEntry
from exekra.hub.credentials.models import Credential
from exekra.hub.executions.models import Execution, ExecutionKey, ExecutionLog
from exekra.hub.license.models import Installation
from exekra.hub.runners.models import Runner, RunnerMetric
from exekra.hub.triggers.models import Trigger, TriggerFire
from exekra.hub.users.models import AuthToken, User
from exekra.hub.workflows.models import ConcurrencySlots, Workflow, WorkflowVersion

__all__ = [
    "AlertChannel",
    "AlertDelivery",
    "AlertEvent",
    "AlertRule",
    "Artifact",
    "ArtifactChunk",
    "AuditEntry",
    "AuthToken",
    "Base",
    "ConcurrencySlots",
    "Credential",
    "Execution",
    "ExecutionKey",
    "ExecutionLog",
    "Installation",
    "Runner",
    "RunnerMetric",
    "Trigger",
    "TriggerFire",
    "User",
    "Workflow",
    "WorkflowVersion",
]
