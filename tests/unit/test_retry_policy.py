"""The retry policy's shape and the request an automatic retry makes (no database: see
tests/integration/test_retries.py for when the hub retries)."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from exekra.hub.executions.models import Execution, TriggerType
from exekra.hub.executions.retries import retry_request
from exekra.hub.workflows.schemas import RetryPolicy, retry_policy_to_api


def test_a_policy_has_defaults_keeps_each_kind_once_and_is_stored_with_its_start() -> None:
    policy = RetryPolicy.model_validate({"attempts": 2, "on": ["TIMEOUT", "FAILED", "TIMEOUT"]})
    stored = policy.stored(since="2026-12-03T22:00:00+00:00")
    assert stored == {
        "attempts": 2,
        "backoffSeconds": 0,
        "backoffFactor": 1,
        "on": ["TIMEOUT", "FAILED"],
        "since": "2026-12-03T22:00:00+00:00",
    }
    assert retry_policy_to_api(stored) == {k: v for k, v in stored.items() if k != "since"}
    assert retry_policy_to_api(None) is None


@pytest.mark.parametrize(
    "body",
    [
        {"on": ["FAILED"]},
        {"attempts": 1},
        {"attempts": 1, "on": ["COMPLETED"]},
        {"attempts": 10, "backoffSeconds": 86400.5, "on": ["FAILED"]},
        {"attempts": 10, "backoffFactor": 10.5, "on": ["FAILED"]},
    ],
)
def test_a_policy_out_of_bounds_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy.model_validate(body)


def test_a_retry_reruns_the_failed_version_with_its_inputs_priority_and_trigger_one_further_down() -> None:
    failed = Execution(
        id=uuid.uuid4(),
        workflow_id=uuid.uuid4(),
        version_id=uuid.uuid4(),
        inputs={"n": 1},
        priority=3,
        trigger_type=TriggerType.SCHEDULE,
        triggered_by="trigger-id",
        retry_attempt=1,
        idempotency_key="key",
    )
    request = retry_request(failed)
    assert (request.workflow_id, request.version_id, request.inputs) == (
        failed.workflow_id,
        failed.version_id,
        {"n": 1},
    )
    assert (request.priority, request.trigger_type, request.triggered_by) == (3, TriggerType.SCHEDULE, "trigger-id")
    assert (request.retry_of, request.retry_attempt, request.idempotency_key) == (failed.id, 2, None)
