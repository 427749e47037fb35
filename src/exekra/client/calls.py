"""Every API call the SDK makes, as data: method, path, query, body and how to read the answer.

The sync and async clients only send these; requests are built and answers parsed here, once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import orjson

from exekra.client.errors import AmbiguousId, NotFound
from exekra.client.models import (
    AlertChannel,
    AlertChannelWithSecret,
    AlertDelivery,
    AlertRule,
    Execution,
    ExecutionCreated,
    Health,
    License,
    LogLine,
    LogPage,
    Model,
    NodeRun,
    Page,
    Runner,
    RunnerRegistration,
    Session,
    Trigger,
    TriggerWithToken,
    User,
    Version,
    WebhookCall,
    Workflow,
    WorkflowWithVersion,
)

T = TypeVar("T")
M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def query(self) -> dict[str, Any]:
        """The query parameters that are set (None means "not given")."""
        return {k: v for k, v in self.params.items() if v is not None}


def _one(model: type[M], key: str) -> Callable[[Any], M]:
    return lambda body: model.model_validate(body[key])


def _whole(model: type[M]) -> Callable[[Any], M]:
    return model.model_validate


def _page(model: type[M], key: str) -> Callable[[Any], Page[M]]:
    return lambda body: Page[model].model_validate({**body, "items": body[key]})  # type: ignore[valid-type]


def _ok(_: Any) -> None:
    return None


def _segment(value: str | int) -> str:
    return quote(str(value), safe="")


def _body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields that are set."""
    return {k: v for k, v in fields.items() if v is not None}


def is_id(value: str) -> bool:
    """Whether `value` is shaped like a hub ID (so not a name)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


MIN_PREFIX_DIGITS = 6
PREFIX_MATCHES_SHOWN = 10


def is_id_prefix(value: str) -> bool:
    """Whether `value` can be the start of an ID: 6 to 32 hex digits (dashes ignored), as the hub's `idPrefix`."""
    digits = value.replace("-", "")
    return MIN_PREFIX_DIGITS <= len(digits) <= 32 and all(c in "0123456789abcdefABCDEF" for c in digits)


def only_match(kind: str, ref: str, page: Page[M]) -> M:
    """The one item a short ID matched: `NotFound` for none, `AmbiguousId` naming the matches for several."""
    if not page.items:
        raise NotFound(f"{kind} {ref} not found", code="not_found")
    if len(page.items) > 1:
        raise AmbiguousId(kind, ref, [str(getattr(item, "id", "")) for item in page.items], page.total)
    return page.items[0]


def exact_name(items: list[M], name: str) -> M | None:
    """The item of exactly this name, if any (names of workflows, alert channels and rules are unique)."""
    return next((item for item in items if getattr(item, "name", None) == name), None)


def named(kind: str, ref: str, items: list[M]) -> M:
    """The one item called `ref`; NotFound when none is."""
    found = exact_name(items, ref)
    if found is None:
        raise NotFound(f"{kind} {ref} not found", code="not_found")
    return found


def bad_reference(kind: str, ref: str) -> NotFound:
    return NotFound(
        f"{kind} {ref} not found: give its ID or its first {MIN_PREFIX_DIGITS}+ characters", code="not_found"
    )


# --- system and sign-in ---------------------------------------------------------------------------------------


def health() -> Call[Health]:
    return Call("GET", "/api/health", _whole(Health))


def login(email: str, password: str) -> Call[Session]:
    return Call("POST", "/api/auth/login", _whole(Session), json={"email": email, "password": password})


def logout() -> Call[None]:
    return Call("POST", "/api/auth/logout", _ok)


def me() -> Call[User]:
    return Call("GET", "/api/auth/me", _one(User, "user"))


def change_password(current: str, new: str) -> Call[User]:
    body = {"currentPassword": current, "newPassword": new}
    return Call("POST", "/api/auth/password", _one(User, "user"), json=body)


# --- workflows --------------------------------------------------------------------------------------------------


def list_workflows(
    *, q: str | None, archived: bool, page: int, limit: int, id_prefix: str | None = None
) -> Call[Page[Workflow]]:
    params = {"q": q, "archived": "true" if archived else None, "page": page, "limit": limit, "idPrefix": id_prefix}
    return Call("GET", "/api/workflows", _page(Workflow, "workflows"), params=params)


def get_workflow(workflow_id: str) -> Call[Workflow]:
    return Call("GET", f"/api/workflows/{_segment(workflow_id)}", _one(Workflow, "workflow"))


def create_workflow(name: str, definition: dict[str, Any], settings: dict[str, Any]) -> Call[WorkflowWithVersion]:
    body = {"name": name, "definition": definition, **_body(**settings)}
    return Call("POST", "/api/workflows", _whole(WorkflowWithVersion), json=body)


def update_workflow(workflow_id: str, changes: dict[str, Any]) -> Call[Workflow]:
    return Call("PATCH", f"/api/workflows/{_segment(workflow_id)}", _one(Workflow, "workflow"), json=changes)


def save_version(workflow_id: str, definition: dict[str, Any]) -> Call[Version]:
    path = f"/api/workflows/{_segment(workflow_id)}/versions"
    return Call("POST", path, _one(Version, "version"), json={"definition": definition})


def get_version(workflow_id: str, number: int) -> Call[Version]:
    path = f"/api/workflows/{_segment(workflow_id)}/versions/{_segment(number)}"
    return Call("GET", path, _one(Version, "version"))


def publish_workflow(workflow_id: str, version: int | None = None) -> Call[WorkflowWithVersion]:
    body = None if version is None else {"version": version}
    return Call("POST", f"/api/workflows/{_segment(workflow_id)}/publish", _whole(WorkflowWithVersion), json=body)


def export_workflow(workflow_id: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/api/workflows/{_segment(workflow_id)}/export", lambda body: dict(body["export"]))


def import_workflow(document: dict[str, Any], mode: str) -> Call[WorkflowWithVersion]:
    return Call("POST", "/api/workflows/import", _whole(WorkflowWithVersion), params={"mode": mode}, json=document)


# --- executions -------------------------------------------------------------------------------------------------


def create_execution(
    workflow_id: str,
    inputs: dict[str, Any] | None,
    *,
    priority: int | None,
    runner_id: str | None,
    idempotency_key: str | None,
) -> Call[ExecutionCreated]:
    body = _body(
        workflowId=workflow_id,
        inputs=inputs or {},
        priority=priority,
        runnerId=runner_id,
        idempotencyKey=idempotency_key,
    )
    return Call("POST", "/api/executions", _whole(ExecutionCreated), json=body)


def list_executions(
    *,
    workflow_id: str | None,
    runner_id: str | None,
    status: str | None,
    page: int,
    limit: int,
    cursor: str | None,
    exact_total: bool,
    id_prefix: str | None = None,
    retry_of: str | None = None,
    parent_id: str | None = None,
) -> Call[Page[Execution]]:
    params = {
        "idPrefix": id_prefix,
        "workflowId": workflow_id,
        "runnerId": runner_id,
        "retryOf": retry_of,
        "parentId": parent_id,
        "status": status,
        "page": page,
        "limit": limit,
        "cursor": cursor,
        "exactTotal": "true" if exact_total else None,
    }
    return Call("GET", "/api/executions", _page(Execution, "executions"), params=params)


def get_execution(execution_id: str, *, wait: float = 0) -> Call[Execution]:
    """`wait` > 0: the hub answers when the execution ends or after `wait` seconds (at most 30)."""
    path = f"/api/executions/{_segment(execution_id)}"
    return Call("GET", path, _one(Execution, "execution"), params={"wait": wait if wait > 0 else None})


# `wait` asks the hub to hold the answer until the execution ends; kept below the client's request timeout.
LONG_POLL_SECONDS = 20.0


def wait_step(deadline: float | None, now: float) -> float:
    """How long the next `get_execution(wait=…)` of a wait loop may be held."""
    return LONG_POLL_SECONDS if deadline is None else max(0.0, min(LONG_POLL_SECONDS, deadline - now))


def get_logs(execution_id: str, *, after_seq: int, limit: int) -> Call[LogPage]:
    path = f"/api/executions/{_segment(execution_id)}/logs"
    return Call("GET", path, _whole(LogPage), params={"afterSeq": after_seq, "limit": limit})


def get_nodes(execution_id: str) -> Call[list[NodeRun]]:
    path = f"/api/executions/{_segment(execution_id)}/nodes"
    return Call("GET", path, lambda body: [NodeRun.model_validate(node) for node in body["nodes"]])


def log_stream(execution_id: str, *, after_seq: int) -> Call[None]:
    """The Server-Sent Events stream of an execution's log (read with `LogStreamParser`)."""
    return Call("GET", f"/api/executions/{_segment(execution_id)}/logs/stream", _ok, params={"afterSeq": after_seq})


def stop_execution(execution_id: str) -> Call[Execution]:
    return Call("POST", f"/api/executions/{_segment(execution_id)}/stop", _one(Execution, "execution"))


def retry_execution(execution_id: str) -> Call[ExecutionCreated]:
    return Call("POST", f"/api/executions/{_segment(execution_id)}/retry", _whole(ExecutionCreated))


# --- runners ----------------------------------------------------------------------------------------------------


def list_runners(*, status: str | None, page: int, limit: int, id_prefix: str | None = None) -> Call[Page[Runner]]:
    params = {"status": status, "page": page, "limit": limit, "idPrefix": id_prefix}
    return Call("GET", "/api/runners", _page(Runner, "runners"), params=params)


def get_runner(runner_id: str) -> Call[Runner]:
    return Call("GET", f"/api/runners/{_segment(runner_id)}", _one(Runner, "runner"))


def register_runner(name: str, *, type: str | None, labels: list[str] | None) -> Call[RunnerRegistration]:
    body = _body(name=name, type=type, labels=labels)
    return Call("POST", "/api/runners", _whole(RunnerRegistration), json=body)


# --- triggers ---------------------------------------------------------------------------------------------------


def list_triggers(
    *, workflow_id: str | None, type: str | None, page: int, limit: int, id_prefix: str | None = None
) -> Call[Page[Trigger]]:
    params = {"workflowId": workflow_id, "type": type, "page": page, "limit": limit, "idPrefix": id_prefix}
    return Call("GET", "/api/triggers", _page(Trigger, "triggers"), params=params)


def get_trigger(trigger_id: str) -> Call[Trigger]:
    return Call("GET", f"/api/triggers/{_segment(trigger_id)}", _one(Trigger, "trigger"))


def create_trigger(fields: dict[str, Any]) -> Call[TriggerWithToken]:
    return Call("POST", "/api/triggers", _whole(TriggerWithToken), json=_body(**fields))


def update_trigger(trigger_id: str, changes: dict[str, Any]) -> Call[Trigger]:
    return Call("PATCH", f"/api/triggers/{_segment(trigger_id)}", _one(Trigger, "trigger"), json=changes)


def delete_trigger(trigger_id: str) -> Call[None]:
    return Call("DELETE", f"/api/triggers/{_segment(trigger_id)}", _ok)


def rotate_trigger_token(trigger_id: str) -> Call[TriggerWithToken]:
    return Call("POST", f"/api/triggers/{_segment(trigger_id)}/rotate-token", _whole(TriggerWithToken))


def call_webhook(token: str, payload: Any, idempotency_key: str | None) -> Call[WebhookCall]:
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    return Call("POST", f"/api/webhooks/{_segment(token)}", _whole(WebhookCall), json=payload, headers=headers)


# --- alerts -----------------------------------------------------------------------------------------------------


def list_alert_channels(*, page: int, limit: int) -> Call[Page[AlertChannel]]:
    params = {"page": page, "limit": limit}
    return Call("GET", "/api/alerts/channels", _page(AlertChannel, "channels"), params=params)


def get_alert_channel(channel_id: str) -> Call[AlertChannel]:
    return Call("GET", f"/api/alerts/channels/{_segment(channel_id)}", _one(AlertChannel, "channel"))


def create_alert_channel(
    name: str, type: str, *, url: str | None, to: list[str] | None, enabled: bool
) -> Call[AlertChannelWithSecret]:
    body = _body(name=name, type=type, url=url, to=to, enabled=enabled)
    return Call("POST", "/api/alerts/channels", _whole(AlertChannelWithSecret), json=body)


def update_alert_channel(channel_id: str, changes: dict[str, Any]) -> Call[AlertChannel]:
    path = f"/api/alerts/channels/{_segment(channel_id)}"
    return Call("PATCH", path, _one(AlertChannel, "channel"), json=changes)


def delete_alert_channel(channel_id: str) -> Call[None]:
    return Call("DELETE", f"/api/alerts/channels/{_segment(channel_id)}", _ok)


def rotate_alert_channel_secret(channel_id: str) -> Call[AlertChannelWithSecret]:
    path = f"/api/alerts/channels/{_segment(channel_id)}/rotate-secret"
    return Call("POST", path, _whole(AlertChannelWithSecret))


def test_alert_channel(channel_id: str) -> Call[AlertDelivery]:
    return Call("POST", f"/api/alerts/channels/{_segment(channel_id)}/test", _one(AlertDelivery, "delivery"))


def list_alert_rules(*, workflow_id: str | None, page: int, limit: int) -> Call[Page[AlertRule]]:
    params = {"workflowId": workflow_id, "page": page, "limit": limit}
    return Call("GET", "/api/alerts/rules", _page(AlertRule, "rules"), params=params)


def get_alert_rule(rule_id: str) -> Call[AlertRule]:
    return Call("GET", f"/api/alerts/rules/{_segment(rule_id)}", _one(AlertRule, "rule"))


def create_alert_rule(
    name: str,
    channel_id: str,
    events: list[str],
    *,
    workflow_id: str | None,
    cooldown_seconds: int | None,
    offline_minutes: int | None,
    enabled: bool,
) -> Call[AlertRule]:
    body = _body(
        name=name,
        channelId=channel_id,
        events=events,
        workflowId=workflow_id,
        cooldownSeconds=cooldown_seconds,
        offlineMinutes=offline_minutes,
        enabled=enabled,
    )
    return Call("POST", "/api/alerts/rules", _one(AlertRule, "rule"), json=body)


def update_alert_rule(rule_id: str, changes: dict[str, Any]) -> Call[AlertRule]:
    return Call("PATCH", f"/api/alerts/rules/{_segment(rule_id)}", _one(AlertRule, "rule"), json=changes)


def delete_alert_rule(rule_id: str) -> Call[None]:
    return Call("DELETE", f"/api/alerts/rules/{_segment(rule_id)}", _ok)


def list_alert_deliveries(
    *, status: str | None, rule_id: str | None, channel_id: str | None, page: int, limit: int
) -> Call[Page[AlertDelivery]]:
    params = {"status": status, "ruleId": rule_id, "channelId": channel_id, "page": page, "limit": limit}
    return Call("GET", "/api/alerts/deliveries", _page(AlertDelivery, "deliveries"), params=params)


def retry_alert_delivery(delivery_id: str) -> Call[AlertDelivery]:
    path = f"/api/alerts/deliveries/{_segment(delivery_id)}/retry"
    return Call("POST", path, _one(AlertDelivery, "delivery"))


# --- licence ----------------------------------------------------------------------------------------------------


def get_license() -> Call[License]:
    return Call("GET", "/api/license", _one(License, "license"))


def install_license(text: str) -> Call[License]:
    return Call("POST", "/api/license", _one(License, "license"), json={"license": text})


# --- helpers shared by both clients ------------------------------------------------------------------------------


@dataclass
class LogStreamParser:
    """Reads the log stream's Server-Sent Events line by line: `log` events become `LogLine`s, and the
    `end` event's status is kept in `ended`."""

    last_seq: int = 0
    ended: str | None = None
    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Iterator[LogLine]:
        if line.startswith("event:"):
            self._event = line[6:].strip()
        elif line.startswith("data:"):
            self._data.append(line[5:].strip())
        elif not line.strip() and self._data:
            yield from self._dispatch()

    def _dispatch(self) -> Iterator[LogLine]:
        data = orjson.loads("\n".join(self._data))
        event, self._event, self._data = self._event, "", []
        if event == "log":
            line = LogLine.model_validate(data)
            self.last_seq = line.seq
            yield line
        elif event == "end":
            self.ended = str(data.get("status"))
