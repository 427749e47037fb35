"""Workflow request bodies and the API shapes of workflows and versions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from exekra.hub import concurrency
from exekra.hub.schemas import ApiAnswer, ApiModel, PageInfo
from exekra.hub.workflows.models import VersionState, Workflow, WorkflowVersion

EXPORT_FORMAT = "exekra.workflow/v1"

Label = Annotated[str, Field(min_length=1, max_length=100)]
Labels = Annotated[list[Label], Field(max_length=50)]
Priority = Annotated[int, Field(ge=0, le=9)]
TimeoutSeconds = Annotated[int, Field(ge=1, le=30 * 86400)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=10_000)]
RunnerType = Annotated[str, Field(min_length=1, max_length=100)]
RetryKind = Literal["FAILED", "TIMEOUT", "RUNNER_LOST"]  # `exekra.hub.lifecycle.FailureKind`
MaxConcurrent = Annotated[int, Field(ge=1, le=10_000)]


def _key_template(template: str) -> str:
    problem = concurrency.key_template_problem(template)
    if problem is not None:
        raise ValueError(problem)
    return template


# A template over the inputs, such as `{{ inputs.customer }}`: at most `maxConcurrent` running per value.
ConcurrencyKey = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_key_template)]


class RetryPolicy(ApiModel):
    """When the hub retries a failed execution: up to `attempts` retries, the n-th (from 0) after
    `backoffSeconds * backoffFactor ** n` seconds, for the kinds of failure in `on`."""

    attempts: int = Field(ge=1, le=10)
    backoff_seconds: float = Field(default=0, ge=0, le=86400)
    backoff_factor: float = Field(default=1, ge=1, le=10)
    on: list[RetryKind] = Field(min_length=1, max_length=3)

    @model_validator(mode="after")
    def _kinds_once(self) -> RetryPolicy:
        self.on = list(dict.fromkeys(self.on))
        return self

    def stored(self, *, since: str) -> dict[str, Any]:
        """As `workflows.retry_policy` keeps it: the API's shape, with `since` (ISO 8601), the database's time
        when a policy was first set (executions created before are not retried)."""
        return {**self.model_dump(by_alias=True), "since": since}


def retry_policy_to_api(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """The policy as the API shows it (`RetryPolicy`), from what `workflows.retry_policy` keeps."""
    if stored is None:
        return None
    return {name: stored[name] for name in ("attempts", "backoffSeconds", "backoffFactor", "on")}


class NewWorkflow(ApiModel):
    """A workflow's settings with the definition of its first draft."""

    name: Name
    description: Description = ""
    definition: dict[str, Any]
    runner_type: RunnerType | None = None
    labels: Labels = []
    priority: Priority = 5
    timeout_seconds: TimeoutSeconds | None = None
    retry: RetryPolicy | None = None
    max_concurrent: MaxConcurrent | None = None
    concurrency_key: ConcurrencyKey | None = None


class WorkflowPatch(ApiModel):
    """Settings to change; a field left out is kept, `runnerType`/`timeoutSeconds`/`retry`/`maxConcurrent`/
    `concurrencyKey` may be set to null."""

    name: Name | None = None
    description: Description | None = None
    runner_type: RunnerType | None = None
    labels: Labels | None = None
    priority: Priority | None = None
    timeout_seconds: TimeoutSeconds | None = None
    retry: RetryPolicy | None = None
    max_concurrent: MaxConcurrent | None = None
    concurrency_key: ConcurrencyKey | None = None
    archived: bool | None = None

    @model_validator(mode="after")
    def _required_fields_not_null(self) -> WorkflowPatch:
        nullable = {"runner_type", "timeout_seconds", "retry", "max_concurrent", "concurrency_key"}
        for name in self.model_fields_set - nullable:
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self


class PublishBody(ApiModel):
    """Which version to publish: without it, the latest draft."""

    version: int | None = Field(default=None, ge=1)


class NewVersion(ApiModel):
    definition: dict[str, Any]


class WorkflowImport(NewWorkflow):
    """An export document (`GET /api/workflows/{id}/export`), bare or still wrapped in `{"export": ...}`."""

    format: Literal["exekra.workflow/v1"]

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"export"} and isinstance(data["export"], dict):
            return data["export"]
        return data


class VersionSummary(ApiAnswer):
    """A version as histories list it, without its definition."""

    id: str
    workflow_id: str
    number: int
    published: bool
    state: VersionState
    published_at: datetime | None
    created_by: str | None
    created_at: datetime


class VersionOut(VersionSummary):
    definition: dict[str, Any]


class WorkflowOut(ApiAnswer):
    id: str
    name: str
    description: str
    runner_type: str | None
    labels: list[str]
    priority: int
    timeout_seconds: int | None
    retry: RetryPolicy | None
    max_concurrent: int | None
    concurrency_key: str | None
    archived: bool
    published_version: int | None
    latest_version: int
    created_at: datetime
    updated_at: datetime


class WorkflowDetail(WorkflowOut):
    versions: list[VersionSummary]  # newest first


class WorkflowAnswer(ApiAnswer):
    workflow: WorkflowOut


class WorkflowDetailAnswer(ApiAnswer):
    workflow: WorkflowDetail


class VersionAnswer(ApiAnswer):
    version: VersionOut


class WorkflowWithVersion(ApiAnswer):
    """Create, import and publish: the workflow and the version they made or published."""

    workflow: WorkflowOut
    version: VersionOut


class WorkflowPage(PageInfo):
    workflows: list[WorkflowOut]


class VersionPage(PageInfo):
    versions: list[VersionSummary]


class ExportAnswer(ApiAnswer):
    """The portable document: what `POST /api/workflows/import` accepts, bare or wrapped like this."""

    export: WorkflowImport


@dataclass(frozen=True)
class WorkflowSummary:
    """A workflow with the numbers of its latest and published versions (and, for detail, its history)."""

    workflow: Workflow
    latest_version: int
    published_version: int | None
    versions: list[WorkflowVersion] = field(default_factory=list)


def workflow_to_api(summary: WorkflowSummary, *, with_versions: bool = False) -> dict[str, Any]:
    w = summary.workflow
    shape: dict[str, Any] = {
        "id": str(w.id),
        "name": w.name,
        "description": w.description,
        "runnerType": w.runner_type,
        "labels": list(w.labels),
        "priority": w.priority,
        "timeoutSeconds": w.timeout_seconds,
        "retry": retry_policy_to_api(w.retry_policy),
        "maxConcurrent": w.max_concurrent,
        "concurrencyKey": w.concurrency_key,
        "archived": w.archived,
        "publishedVersion": summary.published_version,
        "latestVersion": summary.latest_version,
        "createdAt": w.created_at,
        "updatedAt": w.updated_at,
    }
    if with_versions:
        shape["versions"] = [version_to_api(v, with_definition=False) for v in summary.versions]
    return shape


def version_to_api(version: WorkflowVersion, *, with_definition: bool = True) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "id": str(version.id),
        "workflowId": str(version.workflow_id),
        "number": version.number,
        "published": version.published,
        "state": version.state.value,
        "publishedAt": version.published_at,
        "createdBy": None if version.created_by is None else str(version.created_by),
        "createdAt": version.created_at,
    }
    if with_definition:
        shape["definition"] = version.definition
    return shape


def export_to_api(workflow: Workflow, version: WorkflowVersion) -> dict[str, Any]:
    """The portable document that `POST /api/workflows/import` accepts on another hub."""
    return {
        "format": EXPORT_FORMAT,
        "name": workflow.name,
        "description": workflow.description,
        "runnerType": workflow.runner_type,
        "labels": list(workflow.labels),
        "priority": workflow.priority,
        "timeoutSeconds": workflow.timeout_seconds,
        "retry": retry_policy_to_api(workflow.retry_policy),
        "maxConcurrent": workflow.max_concurrent,
        "concurrencyKey": workflow.concurrency_key,
        "definition": version.definition,
    }
