"""Alert pieces without a hub: the webhook signature, the retry backoff, redaction, and rule/channel input rules."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from exekra.hub.alerts.outbox import MAX_RETRY_SECONDS, Outcome, retry_delay
from exekra.hub.alerts.schemas import NewChannel, NewRule, slack_display
from exekra.hub.alerts.senders import redacted, signature


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"id":"d1","kind":"ALERT"}'
    expected = hmac.new(b"exs_secret", b"1764799380." + body, hashlib.sha256).hexdigest()
    assert signature("exs_secret", "1764799380", body) == f"sha256={expected}"
    assert signature("exs_secret", "1764799381", body) != signature("exs_secret", "1764799380", body)


def test_retries_wait_twice_as_long_each_time_up_to_an_hour() -> None:
    assert [retry_delay(n, 30) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert retry_delay(20, 30) == MAX_RETRY_SECONDS


def test_errors_never_carry_a_secret() -> None:
    outcome = Outcome(False, error="ConnectError: https://hooks.example/T0/B0/XYZ refused")
    cleaned = redacted(outcome, ["https://hooks.example/T0/B0/XYZ"])
    assert cleaned.error == "ConnectError: [secret] refused" and cleaned.ok is False


def test_a_slack_url_shows_only_its_host() -> None:
    assert slack_display("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "EMAIL"},
        {"type": "EMAIL", "to": ["a@b.test"], "url": "https://x.test"},
        {"type": "WEBHOOK"},
        {"type": "WEBHOOK", "url": "javascript:alert(1)"},
        {"type": "SLACK", "url": "https://"},
        {"type": "EMAIL", "to": ["a@b.test, c@d.test"]},
    ],
)
def test_a_channel_takes_the_address_of_its_type(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        NewChannel.model_validate({"name": "c", **fields})


def test_runner_offline_rules_are_global() -> None:
    with pytest.raises(ValidationError, match="no workflowId"):
        NewRule.model_validate({"name": "r", "channelId": "c", "events": ["RUNNER_OFFLINE"], "workflowId": "w"})
    rule = NewRule.model_validate({"name": "r", "channelId": "c", "events": ["RUNNER_OFFLINE", "FAILED"]})
    assert rule.cooldown_seconds == 300 and rule.offline_minutes == 5
