"""Which top-level node may run next: the bookkeeping of a run's graph, without threads or activities.

Each edge is unresolved until its source ends, then taken (the source ran and the edge has no `when`, or its
`when` equals the source's result) or not taken (the source was skipped or stopped, or its result differs).

- A node is **ready** when every edge into it is resolved and at least one was taken (the implicit join).
  The start node is ready once every edge into it is resolved, taken or not (usually it has none).
- A node is **skipped** when every edge into it is resolved and none was taken; the edges leaving it are then
  not taken either, so skips cascade. A node without incoming edges, other than the start node, is skipped
  at once.
- A `control.join` with `mode: "any"` is ready as soon as one edge into it is taken. Then the nodes that feed
  only into it (every path from them leads into the join, see `_feeding_only`) are no longer needed: those
  still waiting are skipped, those running are to be cancelled.

The engine asks `ready()` for nodes to start, calls `start`, and reports each end with `ran` or `ended`; every
call that resolves edges returns the `Decisions` that follow (skips, cancellations), cascades included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from exekra.workflow.definition import NodeDefinition, WorkflowDefinition
from exekra.workflow.validation import JOIN_ACTIVITY


class _State(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    ENDED = "ended"
    """Ran (completed, or failed under continueOnError), failed, or was stopped."""
    SKIPPED = "skipped"


@dataclass
class Decisions:
    """What an end implies: nodes now skipped and running nodes to cancel, each with the reason."""

    skipped: list[tuple[NodeDefinition, str]] = field(default_factory=list)
    cancel: list[tuple[str, str]] = field(default_factory=list)


class Schedule:
    """The state of every top-level node of one run (see the module docstring for the rules)."""

    def __init__(self, workflow: WorkflowDefinition) -> None:
        self._order = workflow.execution_order()
        self._nodes = {node.id: node for node in self._order}
        self._position = {node.id: index for index, node in enumerate(self._order)}
        self._start = workflow.start_node()
        self._edges = workflow.edges
        self._incoming: dict[str, list[int]] = {node_id: [] for node_id in self._nodes}
        self._outgoing: dict[str, list[int]] = {node_id: [] for node_id in self._nodes}
        for index, edge in enumerate(self._edges):
            self._incoming[edge.target].append(index)
            self._outgoing[edge.source].append(index)
        self._taken: dict[int, bool] = {}  # resolved edges only
        self._state = dict.fromkeys(self._nodes, _State.WAITING)
        self._any_joins = {node.id for node in self._order if _is_any_join(node)}
        self._feeders = {join_id: self._feeding_only(join_id) for join_id in self._any_joins}
        """What each `mode: any` join abandons when it goes on (popped then: it goes on once)."""

    def begin(self) -> Decisions:
        """The nodes skipped before anything runs: those without incoming edges but the start node."""
        decisions = Decisions()
        for node in self._order:
            if node.id != self._start and not self._incoming[node.id]:
                self._skip(node.id, "no edge into it was taken", decisions)
                self._resolve(node.id, set(), decisions)
        return decisions

    def ready(self) -> list[NodeDefinition]:
        """The waiting nodes that may start now, in topological order (ties: position in the definition)."""
        return [node for node in self._order if self._state[node.id] is _State.WAITING and self._is_ready(node.id)]

    def start(self, node_id: str) -> None:
        """`node_id` (one of `ready()`) is running."""
        self._state[node_id] = _State.RUNNING

    def ran(self, node_id: str, branch: str | None) -> Decisions:
        """`node_id` ran and gave `branch` (its result as text): the edges whose `when` is absent or equal are
        taken."""
        self._state[node_id] = _State.ENDED
        taken = {index for index in self._outgoing[node_id] if self._edges[index].when in (None, branch)}
        return self._resolve(node_id, taken, Decisions())

    def ended(self, node_id: str) -> Decisions:
        """`node_id` ended without running to the end (stopped or failed): no edge leaving it is taken."""
        self._state[node_id] = _State.ENDED
        return self._resolve(node_id, set(), Decisions())

    def _is_ready(self, node_id: str) -> bool:
        incoming = self._incoming[node_id]
        if node_id in self._any_joins and any(self._taken.get(index) for index in incoming):
            return True
        if not all(index in self._taken for index in incoming):
            return False
        return node_id == self._start or any(self._taken[index] for index in incoming)

    def _resolve(self, source: str, taken: set[int], decisions: Decisions) -> Decisions:
        """Resolve the edges leaving `source` (`taken` are taken) and follow the consequences."""
        pending = [(source, taken)]
        while pending:
            node_id, taken_now = pending.pop()
            for index in self._outgoing[node_id]:
                self._taken[index] = index in taken_now
                target = self._edges[index].target
                if self._state[target] is not _State.WAITING:
                    continue
                if index in taken_now and target in self._any_joins:
                    self._abandon_feeders(target, decisions)
                elif self._none_taken(target) and target != self._start:
                    self._skip(target, "no edge into it was taken", decisions)
                    pending.append((target, set()))
        return decisions

    def _none_taken(self, node_id: str) -> bool:
        incoming = self._incoming[node_id]
        return all(index in self._taken and not self._taken[index] for index in incoming)

    def _abandon_feeders(self, join_id: str, decisions: Decisions) -> None:
        """A `mode: any` join goes on: what feeds only into it is skipped or cancelled."""
        reason = f"join {join_id} went on without it"
        for node_id in sorted(self._feeders.pop(join_id, set()), key=self._position.__getitem__):
            if self._state[node_id] is _State.WAITING:
                self._skip(node_id, reason, decisions)
                for index in self._outgoing[node_id]:
                    self._taken[index] = False
            elif self._state[node_id] is _State.RUNNING:
                decisions.cancel.append((node_id, reason))

    def _feeding_only(self, join_id: str) -> set[str]:
        """The nodes every path from which leads into `join_id`: all their successors are the join or such nodes."""
        feeders: set[str] = set()
        for node in reversed(self._order):
            targets = {self._edges[index].target for index in self._outgoing[node.id]}
            if targets and all(target == join_id or target in feeders for target in targets):
                feeders.add(node.id)
        return feeders

    def _skip(self, node_id: str, reason: str, decisions: Decisions) -> None:
        self._state[node_id] = _State.SKIPPED
        decisions.skipped.append((self._nodes[node_id], reason))


def _is_any_join(node: NodeDefinition) -> bool:
    return node.activity == JOIN_ACTIVITY and node.params.get("mode") == "any"
