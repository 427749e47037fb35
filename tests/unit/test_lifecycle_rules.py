"""The transition rules of SPEC §4 as a table: terminal states are final, and the rules draw exactly the diagram."""

from __future__ import annotations

from exekra.config import Settings
from exekra.hub import lifecycle
from exekra.hub.executions.models import TERMINAL_STATUSES
from exekra.hub.executions.models import ExecutionStatus as S
from exekra.hub.executions.stale import stale_schedule
from exekra.hub.runners.models import RunnerStatus as R

# SPEC §4's diagram, edge by edge (the request-stop rule marks a RUNNING execution and keeps it RUNNING).
DIAGRAM = {
    (S.QUEUED, S.ASSIGNED),
    (S.ASSIGNED, S.RUNNING),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.STOPPED),
    (S.ASSIGNED, S.QUEUED),  # once
    (S.QUEUED, S.FAILED),
    (S.ASSIGNED, S.FAILED),
    (S.QUEUED, S.STOPPED),
    (S.ASSIGNED, S.STOPPED),
}
STALE_RULES = {
    lifecycle.QUEUE_TIMEOUT,
    lifecycle.REQUEUE,
    lifecycle.PICKUP_FAILED,
    lifecycle.RUNNER_LOST,
    lifecycle.STOP_UNCONFIRMED,
    lifecycle.HUB_TIMEOUT,
}


def _edges(rules: tuple[lifecycle.Rule[S], ...]) -> set[tuple[S, S]]:
    return {(source, rule.target) for rule in rules for source in rule.sources if source != rule.target}


def test_no_rule_starts_from_a_terminal_state() -> None:
    for rule in lifecycle.EXECUTION_RULES:
        assert not set(rule.sources) & TERMINAL_STATUSES, rule.name


def test_rules_draw_exactly_the_spec_diagram() -> None:
    assert _edges(lifecycle.EXECUTION_RULES) == DIAGRAM


def test_every_state_is_reachable_from_queued_and_every_live_state_can_end() -> None:
    reachable, frontier = {S.QUEUED}, [S.QUEUED]
    while frontier:
        state = frontier.pop()
        for source, target in DIAGRAM:
            if source == state and target not in reachable:
                reachable.add(target)
                frontier.append(target)
    assert reachable == set(S)
    for state in set(S) - TERMINAL_STATUSES:
        assert any(source == state and target in TERMINAL_STATUSES for source, target in DIAGRAM), state


def test_only_the_requeue_rule_leads_back_to_queued() -> None:
    back = [rule for rule in lifecycle.EXECUTION_RULES if rule.target == S.QUEUED and rule.sources]
    assert back == [lifecycle.REQUEUE] and lifecycle.REQUEUE.sources == (S.ASSIGNED,)


def test_creation_is_the_one_rule_without_a_source_and_it_queues() -> None:
    created = [rule for rule in lifecycle.EXECUTION_RULES if not rule.sources]
    assert created == [lifecycle.CREATE] and lifecycle.CREATE.target == S.QUEUED
    assert lifecycle.CREATE.effects.queued and lifecycle.CREATE.effects.audit == "execution.create"


def test_rule_names_are_unique_and_every_rule_is_in_the_table() -> None:
    rules = [value for value in vars(lifecycle).values() if isinstance(value, lifecycle.Rule)]
    names = [rule.name for rule in rules]
    assert len(names) == len(set(names))
    execution_rules = {rule for rule in rules if isinstance(rule.target, S)}
    assert execution_rules == set(lifecycle.EXECUTION_RULES)


def test_each_stale_rule_has_its_own_conditional_update_naming_its_sources_and_target() -> None:
    assert set(lifecycle.STALE_CHECKS) == STALE_RULES
    statements = [check.statement for check in lifecycle.STALE_CHECKS.values()]
    assert len({id(s) for s in statements}) == len(statements)
    for rule, check in lifecycle.STALE_CHECKS.items():
        sql = check.statement.text
        assert f"SET status = '{rule.target.value}'" in sql, rule.name
        sources = ",".join(f"'{s.value}'" for s in rule.sources)
        assert f"x.status IN ({sources})" in sql, rule.name
        assert "FOR UPDATE OF x SKIP LOCKED" in sql and "now()" in sql, rule.name


def test_runner_offline_rule_takes_live_runners_only() -> None:
    rule = lifecycle.RUNNER_OFFLINE
    assert set(rule.sources) == {R.ONLINE, R.BUSY} and rule.target == R.OFFLINE


def test_a_pass_applies_every_stale_rule_once_with_its_setting() -> None:
    settings = Settings(
        queue_timeout_seconds=11,
        pickup_timeout_seconds=22,
        runner_offline_seconds=33,
        running_grace_seconds=44,
        stop_grace_seconds=55,
    )
    schedule = dict(stale_schedule(settings))
    assert len(schedule) == len(stale_schedule(settings)) and set(schedule) == STALE_RULES
    assert schedule == {
        lifecycle.QUEUE_TIMEOUT: 11,
        lifecycle.PICKUP_FAILED: 22,
        lifecycle.REQUEUE: 22,
        lifecycle.RUNNER_LOST: 33 + 44,  # silent for the offline delay, then OFFLINE for the grace
        lifecycle.STOP_UNCONFIRMED: 55,
        lifecycle.HUB_TIMEOUT: 55,
    }


def test_every_hub_action_is_audited_under_the_rule_name() -> None:
    for rule in STALE_RULES:
        assert rule.effects.audit == "execution." + rule.name.replace("-", "_"), rule.name
    assert lifecycle.RUNNER_OFFLINE.effects.audit == "runner.offline"
    assert lifecycle.STOP_NOW.effects.audit == lifecycle.REQUEST_STOP.effects.audit == "execution.stop"


def test_effects_follow_from_the_states_a_rule_connects() -> None:
    """A rule's declared effects agree with its edge in the diagram: no caller has to add one by hand."""
    for rule in lifecycle.EXECUTION_RULES:
        effects = rule.effects
        assert effects.ends == (rule.target in TERMINAL_STATUSES), rule.name
        assert effects.queued == (rule.target == S.QUEUED), rule.name
        assert effects.assigned == (rule.target == S.ASSIGNED), rule.name
        # Leaving QUEUED for anything but an assignment takes the execution out of the queue.
        leaves_queue = S.QUEUED in rule.sources and rule.target not in (S.QUEUED, S.ASSIGNED)
        assert effects.unqueued == leaves_queue, rule.name
        # A runner may hold it in every source but QUEUED; it lets go unless the execution stays with it.
        holds = bool(set(rule.sources) & {S.ASSIGNED, S.RUNNING})
        assert effects.frees_runner == (holds and rule.target not in (S.ASSIGNED, S.RUNNING)), rule.name


def test_a_rule_frees_a_concurrency_slot_exactly_when_it_takes_an_execution_out_of_assigned_or_running() -> None:
    live = {S.ASSIGNED, S.RUNNING}
    for rule in lifecycle.EXECUTION_RULES:
        leaves_live = bool(set(rule.sources) & live) and rule.target not in live
        assert rule.effects.frees_slot == leaves_live, rule.name
        assert rule.effects.frees_slot == rule.effects.frees_runner, rule.name  # the one statement frees both
