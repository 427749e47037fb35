"""One leader among real hub processes (`exekra.hub.leader`): exactly one says so, a survivor takes over within
two maintenance intervals of the leader's kill -9, and no schedule fires twice or is missed across the change."""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator

import pytest

from .conftest import (
    HubProcess,
    admin_client,
    health,
    own_database,
    publish,
    schedule_runs,
    schedules_settled,
    sql,
    wait_until,
    yearly_schedule,
)

INTERVAL = 1.0  # EXEKRA_MAINTENANCE_INTERVAL_SECONDS of both hubs: a lease turn every 0.2 s
FAST = {"EXEKRA_MAINTENANCE_INTERVAL_SECONDS": str(INTERVAL), "EXEKRA_SCHEDULER_INTERVAL_SECONDS": "0.1"}
ADMIN = "admin@leader.test"
NOOP = {"nodes": [{"id": "n", "activity": "log.message", "params": {"message": "tick"}}], "edges": []}
SCHEDULES = 100


@pytest.fixture(scope="module")
def leader_database_url(pg_server_url: str) -> Iterator[str]:
    with own_database(pg_server_url, "leader") as url:
        yield url


@pytest.fixture
def two_hubs(leader_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[HubProcess]]:
    """Two hub processes on one database, started one after the other: the first leads."""
    hubs = [HubProcess(leader_database_url, tmp_path_factory.mktemp("leader-hub"), extra_env=dict(FAST)) for _ in "ab"]
    try:
        for hub in hubs:
            hub.start()
        yield hubs
    finally:
        for hub in hubs:
            hub.stop()


def the_leader(hubs: list[HubProcess]) -> tuple[HubProcess, HubProcess]:
    """(the leader, the other), failing unless exactly one of the two says it leads."""
    leading = [hub for hub in hubs if health(hub)["leader"] is True]
    assert len(leading) == 1, [health(hub) for hub in hubs]
    other = next(hub for hub in hubs if hub is not leading[0])
    return leading[0], other


def test_exactly_one_hub_leads_and_a_survivor_takes_over_within_two_intervals_of_a_kill(
    two_hubs: list[HubProcess],
) -> None:
    leader, other = the_leader(two_hubs)
    assert leader is two_hubs[0]
    answers = [health(hub) for hub in two_hubs]
    assert answers[0]["instance"] != answers[1]["instance"]
    assert all(
        f":{hub.process.pid}:" in str(answer["instance"])
        for hub, answer in zip(two_hubs, answers, strict=True)
        if hub.process
    )

    leader.stop(signal.SIGKILL)
    killed_at = time.monotonic()
    wait_until(lambda: health(other)["leader"], 2 * INTERVAL, 0.02, "the survivor to lead")
    assert time.monotonic() - killed_at <= 2 * INTERVAL

    leader.start()  # back, as a standby
    assert health(leader)["leader"] is False and health(other)["leader"] is True
    assert f"leader: {health(other)['instance']} now runs the singleton work" in other.log_path.read_text()


def test_schedules_fire_once_each_across_a_leader_killed_in_the_middle_of_firing(
    two_hubs: list[HubProcess], leader_database_url: str
) -> None:
    leader, survivor = the_leader(two_hubs)
    with admin_client(survivor, ADMIN) as api:
        # Nobody runs this label: the executions stay queued, which is all this test needs.
        workflow_id = publish(api, NOOP, labels=[f"nobody-{secrets.token_hex(3)}"])
        trigger_ids = [yearly_schedule(api, workflow_id, f"handover-{i}") for i in range(SCHEDULES)]
    sql(
        leader_database_url,
        "UPDATE triggers SET next_fire_at = date_trunc('second', now()) - interval '1 second'"
        " WHERE id = ANY($1::uuid[])",
        trigger_ids,
    )

    wait_until(lambda: fires_recorded(leader_database_url, trigger_ids), 10, 0.005, "the leader to start firing")
    leader.stop(signal.SIGKILL)
    fired_by_the_old_leader = fires_recorded(leader_database_url, trigger_ids)
    wait_until(lambda: schedules_settled(leader_database_url, trigger_ids), 15, 0.05, "the new leader to fire the rest")

    assert 0 < fired_by_the_old_leader < SCHEDULES, "the kill did not land in the middle of the fires"
    assert health(survivor)["leader"] is True
    assert schedule_runs(leader_database_url, trigger_ids) == dict.fromkeys(trigger_ids, 1)  # none twice, none missed
    fires = sql(
        leader_database_url,
        "SELECT count(*) AS n, count(execution_id) AS started FROM trigger_fires WHERE trigger_id = ANY($1::uuid[])",
        trigger_ids,
    )[0]
    assert (fires["n"], fires["started"]) == (SCHEDULES, SCHEDULES)


def fires_recorded(database_url: str, trigger_ids: list[str]) -> int:
    rows = sql(database_url, "SELECT count(*) AS n FROM trigger_fires WHERE trigger_id = ANY($1::uuid[])", trigger_ids)
    return int(rows[0]["n"])
