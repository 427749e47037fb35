"""The API fuzz gate: schemathesis generates requests from the hub's own OpenAPI document and sends them to a
real hub process, signed in as each role and as nobody. No answer may be a 5xx, and every answer must match
the schema the document gives for it.

`make test` runs a bounded number of examples per operation and role (`EXEKRA_FUZZ_EXAMPLES`, default 4);
`make fuzz` runs many more. The hub has a database of its own: what the fuzzer creates, breaks or locks
(failed sign-ins count against the address) stays there.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from exekra.db.migrate import upgrade
from exekra.embedded import create_database, drop_database

from .conftest import PASSWORD, HubProcess

EXAMPLES = int(os.environ.get("EXEKRA_FUZZ_EXAMPLES", "4"))


@pytest.fixture(scope="module")
def fuzz_hub(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    name = f"exekra_fuzz_{secrets.token_hex(4)}"
    database_url = create_database(pg_server_url, name)
    upgrade(database_url)
    hub = HubProcess(database_url, tmp_path_factory.mktemp("fuzz-hub"))
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()
        drop_database(pg_server_url, name)


@pytest.fixture(scope="module")
def tokens(fuzz_hub: HubProcess) -> dict[str | None, dict[str, str]]:
    """An API token of a user of each role (headers to send); `None`: no headers."""
    with httpx.Client(base_url=fuzz_hub.url, timeout=30) as client:
        admin = client.post("/api/auth/bootstrap", json={"email": "admin@fuzz.test", "password": PASSWORD})
        admin.raise_for_status()
        client.headers["Authorization"] = f"Bearer {admin.json()['token']}"
        # Something for the fuzzer to find: a workflow with a published version, and an execution of it.
        definition = {"nodes": [{"id": "hello", "activity": "log.message", "params": {"message": "hi"}}]}
        workflow = client.post("/api/workflows", json={"name": "fuzzed", "definition": definition}).json()
        client.post(f"/api/workflows/{workflow['workflow']['id']}/publish").raise_for_status()
        client.post("/api/executions", json={"workflowId": workflow["workflow"]["id"]}).raise_for_status()
        headers: dict[str | None, dict[str, str]] = {None: {}}
        for role in ("ADMIN", "DEVELOPER", "OPERATOR"):
            email = f"{role.lower()}-user@fuzz.test"
            client.post("/api/auth/register", json={"email": email, "password": PASSWORD, "role": role})
            with httpx.Client(base_url=fuzz_hub.url, timeout=30) as user:
                session = user.post("/api/auth/login", json={"email": email, "password": PASSWORD}).json()["token"]
                user.headers["Authorization"] = f"Bearer {session}"
                token = user.post("/api/auth/tokens", json={"name": "fuzz"}).json()["token"]
            headers[role] = {"Authorization": f"Bearer {token}"}
        return headers


def test_every_operation_as_every_role_answers_no_5xx_and_matches_its_schema(
    fuzz_hub: HubProcess, tokens: dict[str | None, dict[str, str]]
) -> None:
    """Each operation gets `EXAMPLES` valid requests and as many invalid ones (wrong types, missing fields,
    values out of range); each request goes out once per role and once without a sign-in. Every failure is
    collected, so one run names them all."""
    # Signing out would end the fuzzer's own sign-in (its token): that call is tested elsewhere.
    schema = schemathesis.openapi.from_url(f"{fuzz_hub.url}/api/openapi.json").exclude(
        method="POST", path="/api/auth/logout"
    )
    failures: list[str] = []
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            calls += _fuzz(operation, mode, fuzz_hub.url, tokens, failures)
    assert calls > 100 * len(tokens), calls
    assert not failures, "\n\n".join(failures[:20]) + f"\n\n({len(failures)} failures in {calls} calls)"


def _fuzz(
    operation: Any, mode: GenerationMode, url: str, tokens: dict[str | None, dict[str, str]], failures: list[str]
) -> int:
    """Send `operation` the requests of `mode` as each role; add what fails to `failures`. Returns the calls made."""
    calls = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        nonlocal calls
        for role, headers in tokens.items():
            calls += 1
            try:
                case.call_and_validate(
                    base_url=url, headers=headers, checks=[not_a_server_error, response_schema_conformance], timeout=30
                )
            except (Exception, BaseExceptionGroup) as exc:  # the checks' failure group, or the call's error
                failures.append(f"{operation.label} as {role or 'nobody'} ({mode.value}): {exc!r}")

    try:
        call()
    except Unsatisfiable:
        # No parameter or body to get wrong (e.g. GET /api/health): nothing negative to send.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return calls


def test_the_hub_logged_no_unhandled_error(fuzz_hub: HubProcess, tokens: dict[str | None, Any]) -> None:
    """Runs after the fuzz cases (file order): a 4xx answer is fine, a traceback in the hub's log is not."""
    log = Path(fuzz_hub.log_path).read_text(errors="replace")
    assert "Traceback" not in log, log[log.find("Traceback") - 2000 : log.find("Traceback") + 4000]
