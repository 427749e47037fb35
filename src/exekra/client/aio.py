"""`AsyncExekraClient`: the asyncio client of the hub's REST API (the same methods as `ExekraClient`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import httpx

from exekra.client import calls
from exekra.client.base import (
    DEFAULT_TIMEOUT_SECONDS,
    STREAM_TIMEOUT,
    client_options,
    finish,
    raise_for_error,
    request_options,
    unreachable,
)
from exekra.client.config import resolve_connection
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
    NodeRun,
    OverlapPolicy,
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


class AsyncExekraClient:
    """An asyncio client: `async with AsyncExekraClient(url, token) as hub: await hub.list_workflows()`.

    Methods raise `exekra.client.errors.ApiError` subclasses for error answers and `HubUnreachable`
    when the hub cannot be reached.
    """

    def __init__(
        self,
        hub_url: str,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        verify: bool | str = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.hub_url = hub_url.rstrip("/")
        self._http = httpx.AsyncClient(**client_options(hub_url, token, timeout, verify), transport=transport)

    @classmethod
    def from_config(cls, hub_url: str | None = None, **options: Any) -> AsyncExekraClient:
        """A client for `hub_url`, else `EXEKRA_HUB_URL`, else the hub of `exekra login`; the token is
        `EXEKRA_TOKEN`, else the one `exekra login` stored for that hub."""
        connection = resolve_connection(hub_url)
        return cls(connection.hub_url, connection.token, **options)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncExekraClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def send(self, call: calls.Call[T]) -> T:
        """Send one call and return its parsed result."""
        try:
            response = await self._http.request(call.method, call.path, **request_options(call))
        except httpx.TransportError as exc:
            raise unreachable(self.hub_url, exc) from None
        return finish(call, response)

    # system and sign-in

    async def health(self) -> Health:
        return await self.send(calls.health())

    async def login(self, email: str, password: str) -> Session:
        """Sign in; later calls of this client use the new session token."""
        session = await self.send(calls.login(email, password))
        self._http.headers["Authorization"] = f"Bearer {session.token}"
        return session

    async def logout(self) -> None:
        await self.send(calls.logout())

    async def me(self) -> User:
        return await self.send(calls.me())

    async def change_password(self, current: str, new: str) -> User:
        """Change the signed-in user's password; their other sessions end, this client's goes on."""
        return await self.send(calls.change_password(current, new))

    # workflows

    async def list_workflows(
        self,
        *,
        q: str | None = None,
        archived: bool = False,
        page: int = 1,
        limit: int = 50,
        id_prefix: str | None = None,
    ) -> Page[Workflow]:
        """Workflows by name; `q` searches names and descriptions, `id_prefix` the start of their IDs."""
        return await self.send(
            calls.list_workflows(q=q, archived=archived, page=page, limit=limit, id_prefix=id_prefix)
        )

    async def get_workflow(self, workflow_id: str) -> Workflow:
        return await self.send(calls.get_workflow(workflow_id))

    async def find_workflow(self, ref: str) -> Workflow:
        """A workflow by ID, by exact name (active ones), or by the first 6+ characters of its ID (archived
        ones too); `NotFound`, or `AmbiguousId` when a short ID is the start of several."""
        if calls.is_id(ref):
            return await self.get_workflow(ref)
        found = calls.exact_name((await self.list_workflows(q=ref, limit=200)).items, ref)
        if found is None and calls.is_id_prefix(ref):
            page = await self.list_workflows(id_prefix=ref, limit=calls.PREFIX_MATCHES_SHOWN)
            if not page.items:
                page = await self.list_workflows(id_prefix=ref, archived=True, limit=calls.PREFIX_MATCHES_SHOWN)
            found = calls.only_match("workflow", ref, page)
        if found is None:
            raise NotFound(f"workflow {ref} not found", code="not_found")
        return await self.get_workflow(found.id)

    async def create_workflow(self, name: str, definition: dict[str, Any], **settings: Any) -> WorkflowWithVersion:
        """Create a workflow whose version 1 is a draft; `settings` are the API's fields in camelCase."""
        return await self.send(calls.create_workflow(name, definition, settings))

    async def update_workflow(self, workflow_id: str, **changes: Any) -> Workflow:
        """Change settings named as in the API (`name`, `description`, `runnerType`, `labels`, `priority`,
        `timeoutSeconds`, `retry`, `maxConcurrent`, `concurrencyKey`, `archived`); None clears `runnerType`,
        `timeoutSeconds`, `retry`, `maxConcurrent` and `concurrencyKey`."""
        return await self.send(calls.update_workflow(workflow_id, changes))

    async def save_version(self, workflow_id: str, definition: dict[str, Any]) -> Version:
        return await self.send(calls.save_version(workflow_id, definition))

    async def get_version(self, workflow_id: str, number: int) -> Version:
        return await self.send(calls.get_version(workflow_id, number))

    async def publish_workflow(self, workflow_id: str, version: int | None = None) -> WorkflowWithVersion:
        """Publish the latest draft, or `version` (an earlier one: a rollback)."""
        return await self.send(calls.publish_workflow(workflow_id, version))

    async def export_workflow(self, workflow_id: str) -> dict[str, Any]:
        return await self.send(calls.export_workflow(workflow_id))

    async def import_workflow(self, document: dict[str, Any], *, mode: str = "create") -> WorkflowWithVersion:
        return await self.send(calls.import_workflow(document, mode))

    # executions

    async def run(
        self,
        workflow_id: str,
        inputs: dict[str, Any] | None = None,
        *,
        priority: int | None = None,
        runner_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> ExecutionCreated:
        """Queue an execution of the workflow's published version (returns at once)."""
        return await self.send(
            calls.create_execution(
                workflow_id, inputs, priority=priority, runner_id=runner_id, idempotency_key=idempotency_key
            )
        )

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        runner_id: str | None = None,
        status: str | None = None,
        page: int = 1,
        limit: int = 50,
        cursor: str | None = None,
        exact_total: bool = False,
        id_prefix: str | None = None,
        retry_of: str | None = None,
        parent_id: str | None = None,
    ) -> Page[Execution]:
        """Newest first. `total` is counted up to the hub's cap (`total_capped` past it), exactly with
        `exact_total`; pages asked with a `cursor` are not counted (`total` is None)."""
        return await self.send(
            calls.list_executions(
                workflow_id=workflow_id,
                runner_id=runner_id,
                status=status,
                page=page,
                limit=limit,
                cursor=cursor,
                exact_total=exact_total,
                id_prefix=id_prefix,
                retry_of=retry_of,
                parent_id=parent_id,
            )
        )

    async def get_execution(self, execution_id: str) -> Execution:
        return await self.send(calls.get_execution(execution_id))

    async def find_execution(self, ref: str) -> Execution:
        """An execution by ID or by the first 6+ characters of its ID (`AmbiguousId` when several start so)."""
        if calls.is_id(ref):
            return await self.get_execution(ref)
        if not calls.is_id_prefix(ref):
            raise calls.bad_reference("execution", ref)
        page = await self.list_executions(id_prefix=ref, limit=calls.PREFIX_MATCHES_SHOWN)
        return calls.only_match("execution", ref, page)

    async def get_logs(self, execution_id: str, *, after_seq: int = 0, limit: int = 1000) -> LogPage:
        return await self.send(calls.get_logs(execution_id, after_seq=after_seq, limit=limit))

    async def get_nodes(self, execution_id: str) -> list[NodeRun]:
        """Every node of the execution's version, in order, with its state and duration."""
        return await self.send(calls.get_nodes(execution_id))

    async def follow_logs(
        self, execution_id: str, *, after_seq: int = 0, reconnects: int = 10, reconnect_delay: float = 1.0
    ) -> AsyncIterator[LogLine]:
        """Log lines as they are written, until the execution has ended.

        A dropped stream (a hub restart) is resumed after the last line seen; `HubUnreachable` after
        `reconnects` failed attempts in a row.
        """
        parser = calls.LogStreamParser(last_seq=after_seq)
        failures = 0
        while parser.ended is None:
            call = calls.log_stream(execution_id, after_seq=parser.last_seq)
            try:
                async with self._http.stream(
                    call.method, call.path, **request_options(call), timeout=STREAM_TIMEOUT
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise_for_error(response)
                    failures = 0
                    async for text in response.aiter_lines():
                        for line in parser.feed(text):
                            yield line
                    for line in parser.feed(""):
                        yield line
            except httpx.TransportError as exc:
                failures += 1
                if failures > reconnects:
                    raise unreachable(self.hub_url, exc) from None
                await asyncio.sleep(reconnect_delay)

    async def wait(
        self,
        execution_id: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the same signature as ExekraClient.wait
        poll_interval: float = 1.0,
    ) -> Execution:
        """Wait until the execution has ended (the hub holds each read until it does, up to 20 s at a time);
        `TimeoutError` after `timeout` seconds. `poll_interval` paces reads only if the hub answers early."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            started = time.monotonic()
            step = calls.wait_step(deadline, started)
            execution = await self.send(calls.get_execution(execution_id, wait=step))
            if execution.is_terminal:
                return execution
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"execution {execution_id} is still {execution.status}")
            if time.monotonic() - started < step / 2:  # not held (an older hub): read again later
                await asyncio.sleep(poll_interval)

    async def stop_execution(self, execution_id: str) -> Execution:
        return await self.send(calls.stop_execution(execution_id))

    async def retry_execution(self, execution_id: str) -> ExecutionCreated:
        return await self.send(calls.retry_execution(execution_id))

    # runners

    async def list_runners(
        self, *, status: str | None = None, page: int = 1, limit: int = 50, id_prefix: str | None = None
    ) -> Page[Runner]:
        return await self.send(calls.list_runners(status=status, page=page, limit=limit, id_prefix=id_prefix))

    async def get_runner(self, runner_id: str) -> Runner:
        return await self.send(calls.get_runner(runner_id))

    async def find_runner(self, ref: str) -> Runner:
        """A runner by ID, by name, or by the first 6+ characters of its ID (`AmbiguousId` when several)."""
        if calls.is_id(ref):
            return await self.get_runner(ref)
        if calls.is_id_prefix(ref):
            page = await self.list_runners(id_prefix=ref, limit=calls.PREFIX_MATCHES_SHOWN)
            if page.items:
                return calls.only_match("runner", ref, page)
        page_number = 1
        while True:  # runner names are unique
            page = await self.list_runners(page=page_number, limit=200)
            named = next((r for r in page.items if r.name == ref), None)
            if named is not None:
                return named
            if page_number * page.limit >= (page.total or 0):
                raise calls.bad_reference("runner", ref)
            page_number += 1

    async def register_runner(
        self, name: str, *, type: str | None = None, labels: list[str] | None = None
    ) -> RunnerRegistration:
        """Register a runner; its machine secret is in this answer only."""
        return await self.send(calls.register_runner(name, type=type, labels=labels))

    # licence

    async def license(self) -> License:
        """The hub's licence, or community mode, with its hub id."""
        return await self.send(calls.get_license())

    async def install_license(self, text: str) -> License:
        """Install a `.lic` file's text (ADMIN) in place of any other; `ValidationFailed` says why it is refused."""
        return await self.send(calls.install_license(text))

    # alerts

    async def list_alert_channels(self, *, page: int = 1, limit: int = 50) -> Page[AlertChannel]:
        return await self.send(calls.list_alert_channels(page=page, limit=limit))

    async def find_alert_channel(self, ref: str) -> AlertChannel:
        """An alert channel by ID or by name."""
        if calls.is_id(ref):
            return await self.send(calls.get_alert_channel(ref))
        return calls.named("alert channel", ref, (await self.list_alert_channels(limit=200)).items)

    async def create_alert_channel(
        self, name: str, type: str, *, url: str | None = None, to: list[str] | None = None, enabled: bool = True
    ) -> AlertChannelWithSecret:
        """Create an EMAIL (`to`), WEBHOOK or SLACK (`url`) channel; a webhook's signing secret is in this answer."""
        return await self.send(calls.create_alert_channel(name, type, url=url, to=to, enabled=enabled))

    async def update_alert_channel(self, channel_id: str, **changes: Any) -> AlertChannel:
        """Change fields named as in the API (`name`, `enabled`, `url`, `to`)."""
        return await self.send(calls.update_alert_channel(channel_id, changes))

    async def delete_alert_channel(self, channel_id: str) -> None:
        await self.send(calls.delete_alert_channel(channel_id))

    async def rotate_alert_channel_secret(self, channel_id: str) -> AlertChannelWithSecret:
        return await self.send(calls.rotate_alert_channel_secret(channel_id))

    async def test_alert_channel(self, channel_id: str) -> AlertDelivery:
        """Queue a test message; the delivery it returns shows how it went."""
        return await self.send(calls.test_alert_channel(channel_id))

    async def list_alert_rules(
        self, *, workflow_id: str | None = None, page: int = 1, limit: int = 50
    ) -> Page[AlertRule]:
        return await self.send(calls.list_alert_rules(workflow_id=workflow_id, page=page, limit=limit))

    async def find_alert_rule(self, ref: str) -> AlertRule:
        """An alert rule by ID or by name."""
        if calls.is_id(ref):
            return await self.send(calls.get_alert_rule(ref))
        return calls.named("alert rule", ref, (await self.list_alert_rules(limit=200)).items)

    async def create_alert_rule(
        self,
        name: str,
        channel_id: str,
        events: list[str],
        *,
        workflow_id: str | None = None,
        cooldown_seconds: int | None = None,
        offline_minutes: int | None = None,
        enabled: bool = True,
    ) -> AlertRule:
        """Alert `channel_id` on `events` (FAILED, TIMEOUT, STOPPED of one workflow or all; RUNNER_OFFLINE)."""
        call = calls.create_alert_rule(
            name,
            channel_id,
            events,
            workflow_id=workflow_id,
            cooldown_seconds=cooldown_seconds,
            offline_minutes=offline_minutes,
            enabled=enabled,
        )
        return await self.send(call)

    async def update_alert_rule(self, rule_id: str, **changes: Any) -> AlertRule:
        """Change fields named as in the API (`name`, `channelId`, `events`, `cooldownSeconds`, `offlineMinutes`,
        `enabled`)."""
        return await self.send(calls.update_alert_rule(rule_id, changes))

    async def delete_alert_rule(self, rule_id: str) -> None:
        await self.send(calls.delete_alert_rule(rule_id))

    async def list_alert_deliveries(
        self,
        *,
        status: str | None = None,
        rule_id: str | None = None,
        channel_id: str | None = None,
        page: int = 1,
        limit: int = 50,
    ) -> Page[AlertDelivery]:
        """Deliveries newest first; `status="FAILED"`: the ones that gave up."""
        call = calls.list_alert_deliveries(
            status=status, rule_id=rule_id, channel_id=channel_id, page=page, limit=limit
        )
        return await self.send(call)

    async def retry_alert_delivery(self, delivery_id: str) -> AlertDelivery:
        return await self.send(calls.retry_alert_delivery(delivery_id))

    # triggers

    async def list_triggers(
        self,
        *,
        workflow_id: str | None = None,
        type: str | None = None,
        page: int = 1,
        limit: int = 50,
        id_prefix: str | None = None,
    ) -> Page[Trigger]:
        return await self.send(
            calls.list_triggers(workflow_id=workflow_id, type=type, page=page, limit=limit, id_prefix=id_prefix)
        )

    async def get_trigger(self, trigger_id: str) -> Trigger:
        return await self.send(calls.get_trigger(trigger_id))

    async def find_trigger(self, ref: str) -> Trigger:
        """A trigger by ID, by a name only one trigger has, or by the first 6+ characters of its ID."""
        if calls.is_id(ref):
            return await self.get_trigger(ref)
        named = [t for t in (await self.list_triggers(limit=200)).items if t.name == ref]
        if len(named) > 1:
            raise AmbiguousId("trigger", ref, [t.id for t in named], by_name=True)
        if named:
            return named[0]
        if not calls.is_id_prefix(ref):
            raise calls.bad_reference("trigger", ref)
        page = await self.list_triggers(id_prefix=ref, limit=calls.PREFIX_MATCHES_SHOWN)
        return calls.only_match("trigger", ref, page)

    async def create_trigger(
        self,
        workflow_id: str,
        type: str,
        name: str,
        *,
        cron_expression: str | None = None,
        timezone: str | None = None,
        overlap_policy: OverlapPolicy | None = None,
        inputs: dict[str, Any] | None = None,
        enabled: bool = True,
    ) -> TriggerWithToken:
        """Create a SCHEDULE (with `cron_expression`, and `overlap_policy` allow, skip or queue_one) or WEBHOOK
        trigger; a webhook's token is in this answer."""
        fields = {
            "workflowId": workflow_id,
            "type": type,
            "name": name,
            "cronExpression": cron_expression,
            "timezone": timezone,
            "overlapPolicy": overlap_policy,
            "inputs": inputs,
            "enabled": enabled,
        }
        return await self.send(calls.create_trigger(fields))

    async def update_trigger(self, trigger_id: str, **changes: Any) -> Trigger:
        """Change fields named as in the API (`name`, `enabled`, `cronExpression`, `timezone`,
        `overlapPolicy`, `inputs`)."""
        return await self.send(calls.update_trigger(trigger_id, changes))

    async def delete_trigger(self, trigger_id: str) -> None:
        await self.send(calls.delete_trigger(trigger_id))

    async def rotate_trigger_token(self, trigger_id: str) -> TriggerWithToken:
        return await self.send(calls.rotate_trigger_token(trigger_id))

    async def call_webhook(self, token: str, payload: Any = None, *, idempotency_key: str | None = None) -> WebhookCall:
        """Call a webhook as an outside system would (the token is the credential)."""
        return await self.send(calls.call_webhook(token, payload, idempotency_key))
