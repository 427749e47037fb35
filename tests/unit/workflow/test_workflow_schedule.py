"""The schedule: which node may start, which are skipped, which a `mode: any` join abandons (no threads)."""

from __future__ import annotations

from typing import Any

from exekra.workflow import validate_definition
from exekra.workflow.schedule import Decisions, Schedule


def graph(edges: list[tuple[str, str] | tuple[str, str, str]], **fields: Any) -> Schedule:
    ids = list(dict.fromkeys(node_id for edge in edges for node_id in edge[:2]))
    joins = fields.pop("joins", {})
    nodes = [
        {"id": node_id, "activity": "control.join", "params": {"mode": joins[node_id]}}
        if node_id in joins
        else {"id": node_id, "activity": "log.message"}
        for node_id in ids
    ]
    edge_list = [{"from": e[0], "to": e[1], **({"when": e[2]} if len(e) == 3 else {})} for e in edges]
    return Schedule(validate_definition({"nodes": nodes, "edges": edge_list, **fields}))


def ready(schedule: Schedule) -> list[str]:
    return [node.id for node in schedule.ready()]


def skipped(decisions: Decisions) -> list[str]:
    return [node.id for node, _ in decisions.skipped]


def test_a_fan_out_makes_every_successor_ready_and_the_join_waits_for_all() -> None:
    schedule = graph([("s", "a"), ("s", "b"), ("a", "j"), ("b", "j")])
    assert skipped(schedule.begin()) == [] and ready(schedule) == ["s"]
    schedule.start("s")
    schedule.ran("s", None)
    assert ready(schedule) == ["a", "b"]
    schedule.start("a")
    schedule.start("b")
    schedule.ran("a", None)
    assert ready(schedule) == []
    schedule.ran("b", None)
    assert ready(schedule) == ["j"]


def test_a_branch_not_taken_is_skipped_with_what_only_it_leads_to_and_the_join_still_runs() -> None:
    schedule = graph([("c", "yes", "true"), ("c", "no", "false"), ("no", "after_no"), ("yes", "j"), ("after_no", "j")])
    schedule.begin()
    schedule.start("c")
    assert skipped(schedule.ran("c", "true")) == ["no", "after_no"]
    schedule.start("yes")
    schedule.ran("yes", None)
    assert ready(schedule) == ["j"]


def test_a_named_start_runs_and_other_roots_are_skipped_with_their_successors() -> None:
    schedule = graph([("other", "x"), ("main", "y")], start="main")
    assert sorted(skipped(schedule.begin())) == ["other", "x"]
    assert ready(schedule) == ["main"]


def test_join_any_is_ready_at_the_first_taken_edge_and_abandons_only_its_feeders() -> None:
    edges: list[tuple[str, str] | tuple[str, str, str]] = [
        ("s", "fast"),
        ("s", "slow"),
        ("s", "shared"),
        ("slow", "slower"),
        ("slower", "j"),
        ("fast", "j"),
        ("shared", "j"),
        ("shared", "elsewhere"),
    ]
    schedule = graph(edges, joins={"j": "any"})
    schedule.begin()
    schedule.start("s")
    schedule.ran("s", None)
    for node_id in ("fast", "slow", "shared"):
        schedule.start(node_id)
    decisions = schedule.ran("fast", None)

    assert ready(schedule) == ["j"]
    assert skipped(decisions) == ["slower"]  # not started: skipped
    assert decisions.cancel == [("slow", "join j went on without it")]  # running: cancelled
    assert schedule.ended("slow").cancel == []
    schedule.ran("shared", None)  # leads elsewhere too: it was left running
    assert ready(schedule) == ["j", "elsewhere"]


def test_join_all_waits_like_the_implicit_join() -> None:
    schedule = graph([("s", "a"), ("s", "b"), ("a", "j"), ("b", "j")], joins={"j": "all"})
    schedule.begin()
    schedule.start("s")
    schedule.ran("s", None)
    schedule.start("a")
    schedule.ran("a", None)
    assert ready(schedule) == ["b"]
