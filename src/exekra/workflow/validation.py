"""The rules of a valid workflow definition, checked on raw JSON data so that every problem is found.

Each problem is an exact human message (indexes in messages, `node 3`, `edge 2`, count from 1) with where it
is: the node id, the 1-based edge index and the parameter path, so that an editor can point at it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from exekra.workflow.errors import Problem
from exekra.workflow.expressions import is_template, syntax_problem

FOREACH_ACTIVITY = "control.foreach"
SUBWORKFLOW_ACTIVITY = "workflow.run"
"""The activity whose `params.nodes` holds a nested list of nodes, run in order for each item."""
IF_ACTIVITY = "control.if"
JOIN_ACTIVITY = "control.join"
"""The activity whose `params.mode` ("all" or "any") the engine reads to decide when the node may start."""
JOIN_MODES = ("all", "any")
MAX_RETRIES = 10
DEFAULT_MAX_PARALLEL = 4
MAX_PARALLEL = 64
"""The upper bound of `maxParallel` and of a foreach's `parallel`: each running node holds two threads of the
worker process, so a definition cannot ask for thousands."""

_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")
_ID_RULE = "letters, digits, '_' and '-', starting with a letter or '_', at most 64 characters"
_DEFINITION_FIELDS = ("inputs", "nodes", "edges", "outputs", "start", "strictInputs", "maxParallel", "ui")
"""`ui` holds the visual designer's layout (node positions, zoom): stored and returned, never read here."""
_NODE_FIELDS = ("id", "activity", "params", "timeoutSeconds", "retries", "retryDelaySeconds", "continueOnError")
_EDGE_FIELDS = ("from", "to", "when")
_INPUT_FIELDS = ("type", "required", "default", "description")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_parallel_bound(value: object) -> bool:
    """True for a valid `maxParallel` or foreach `parallel`: an integer from 1 to `MAX_PARALLEL`."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_PARALLEL


_PARALLEL_RULE = f"an integer from 1 to {MAX_PARALLEL}"


# JSON type name -> (phrase for messages, test)
INPUT_TYPES: dict[str, tuple[str, Callable[[object], bool]]] = {
    "string": ("a string", lambda value: isinstance(value, str)),
    "integer": ("an integer", lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "number": ("a number", _is_number),
    "boolean": ("a boolean", lambda value: isinstance(value, bool)),
    "object": ("an object", lambda value: isinstance(value, dict)),
    "array": ("an array", lambda value: isinstance(value, list)),
}


# Node option -> (test, what it must be)
_NODE_OPTION_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "timeoutSeconds": (lambda value: _is_number(value) and value > 0, "a number greater than 0"),
    "retries": (
        lambda value: INPUT_TYPES["integer"][1](value) and 0 <= value <= MAX_RETRIES,
        f"an integer from 0 to {MAX_RETRIES}",
    ),
    "retryDelaySeconds": (lambda value: _is_number(value) and value >= 0, "a number >= 0"),
    "continueOnError": (lambda value: isinstance(value, bool), "a boolean"),
}


def find_problems(data: object, known_activities: set[str] | None) -> list[Problem]:
    """Every problem of a raw definition, in a stable order (empty when it is valid)."""
    validator = _Validator(known_activities)
    validator.check(data)
    return validator.problems


def walk_strings(value: object, where: str) -> Iterator[tuple[str, str]]:
    """Every string inside `value` with its path (`where.key[0]`), dicts and lists walked."""
    if isinstance(value, str):
        yield value, where
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{where}[{index}]")


def _cycles(node_ids: list[str], successors: dict[str, list[str]]) -> list[list[str]]:
    """One cycle per back edge found by a depth-first walk, e.g. `["a", "b", "a"]`."""
    on_path, done = set(), set()
    cycles: list[list[str]] = []
    for root in node_ids:
        if root in done:
            continue
        path, pending = [root], [iter(successors[root])]
        on_path.add(root)
        while pending:
            following = next(pending[-1], None)
            if following is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                pending.pop()
            elif following in on_path:
                cycles.append([*path[path.index(following) :], following])
            elif following not in done:
                on_path.add(following)
                path.append(following)
                pending.append(iter(successors[following]))
    return cycles


@dataclass(frozen=True)
class _Place:
    """Where a node's problems are reported.

    `label` starts each message; `node` is the top-level node the canvas shows (None when its id is
    unusable); `path` is, for a `control.foreach` sub-node, its path inside that top-level node's params
    (`nodes[0]`, `nodes[0].params.nodes[2]`), None for the top-level node itself.
    """

    label: str
    node: str | None
    path: str | None = None

    def param(self, key: str) -> str:
        """The parameter path of `key` inside this node's params."""
        return f"{self.path}.params.{key}" if self.path else key

    def own(self, key: str | None = None) -> str | None:
        """The parameter path of this node itself (or of one of its fields): None at the top level."""
        if self.path is None:
            return None
        return f"{self.path}.{key}" if key else self.path


class _Validator:
    """Walks raw definition data and records every problem."""

    def __init__(self, known_activities: set[str] | None) -> None:
        self.known_activities = known_activities
        self.problems: list[Problem] = []
        self.seen_ids: set[str] = set()

    def _add(self, message: str, node: str | None = None, edge: int | None = None, param: str | None = None) -> None:
        self.problems.append(Problem(message, node, edge, param))

    def check(self, data: object) -> None:
        if not isinstance(data, dict):
            self._add("definition must be an object")
            return
        self._unknown_fields(data, _DEFINITION_FIELDS, "definition")
        activities = self._node_list(data.get("nodes"), "nodes", "node", None)
        edges = self._edges(data.get("edges", []), activities)
        self._graph(list(activities), edges, start_given="start" in data)
        if "start" in data:
            self._start(data["start"], activities)
        if "ui" in data and not isinstance(data["ui"], dict):
            self._add("ui must be an object")
        self._inputs(data.get("inputs", {}))
        if "strictInputs" in data and not isinstance(data["strictInputs"], bool):
            self._add("strictInputs must be a boolean")
        if "maxParallel" in data and not is_parallel_bound(data["maxParallel"]):
            self._add(f"maxParallel must be {_PARALLEL_RULE}")
        self._outputs(data.get("outputs", {}))

    def _unknown_fields(
        self, item: dict[str, Any], allowed: tuple[str, ...], where: str, node: str | None = None, **at: Any
    ) -> None:
        for key in item:
            if key not in allowed:
                self._add(f"{where}: unknown field '{key}'", node, **at)

    def _templates(self, value: object, where: str, place: _Place | None = None, key: str = "") -> None:
        for text, path in walk_strings(value, key):
            problem = syntax_problem(text)
            if problem:
                if place is None:
                    self._add(f"{where}{path}: {problem}")
                else:
                    self._add(f"{where}{path}: {problem}", place.node, param=place.param(path))

    def _node_list(self, nodes: object, where: str, label: str, owner: _Place | None) -> dict[str, str | None]:
        """Check a list of nodes (top-level when `owner` is None, else a foreach's sub-nodes);
        return id -> activity for the nodes whose id is valid and unique."""
        if not isinstance(nodes, list) or not nodes:
            if owner is None:
                self._add(f"{where} must be a non-empty list")
            else:
                self._add(f"{where} must be a non-empty list", owner.node, param=owner.param("nodes"))
            return {}
        activities: dict[str, str | None] = {}
        for index, node in enumerate(nodes, start=1):
            path = owner.param(f"nodes[{index - 1}]") if owner else None
            anonymous = _Place(f"{label} {index}", owner.node if owner else None, path)
            if not isinstance(node, dict):
                self._add(f"{anonymous.label}: must be an object", anonymous.node, param=anonymous.own())
                continue
            node_id = self._node_id(node, anonymous)
            named = _Place(f"node '{node_id}'", owner.node if owner else node_id, path) if node_id else None
            activity = self._node(node, named or anonymous)
            if node_id:
                activities[node_id] = activity
        return activities

    def _node_id(self, node: dict[str, Any], place: _Place) -> str | None:
        if "id" not in node:
            self._add(f"{place.label}: missing id", place.node, param=place.own())
            return None
        node_id = node["id"]
        if not isinstance(node_id, str) or not _ID.fullmatch(node_id):
            self._add(f"{place.label}: invalid id {node_id!r} ({_ID_RULE})", place.node, param=place.own("id"))
            return None
        if node_id in self.seen_ids:
            self._add(f"{place.label}: duplicate id '{node_id}'", place.node or node_id, param=place.own("id"))
            return None
        self.seen_ids.add(node_id)
        return node_id

    def _node(self, node: dict[str, Any], place: _Place) -> str | None:
        """Check one node's fields; return its activity name when it is a string."""
        where = place.label
        self._unknown_fields(node, _NODE_FIELDS, where, place.node, param=place.own())
        activity = node.get("activity")
        if "activity" not in node:
            self._add(f"{where}: missing activity", place.node, param=place.own())
        elif not isinstance(activity, str) or not activity:
            self._add(f"{where}: activity must be a non-empty string", place.node, param=place.own("activity"))
        elif self.known_activities is not None and activity not in self.known_activities:
            self._add(f"{where}: unknown activity '{activity}'", place.node, param=place.own("activity"))
        self._options(node, place)
        self._params(node.get("params", {}), place, activity)
        return activity if isinstance(activity, str) else None

    def _options(self, node: dict[str, Any], place: _Place) -> None:
        for key, (accepts, phrase) in _NODE_OPTION_RULES.items():
            if key in node and not accepts(node[key]):
                self._add(f"{place.label}: {key} must be {phrase}", place.node, param=place.own(key))

    def _params(self, params: object, place: _Place, activity: object) -> None:
        where = place.label
        if not isinstance(params, dict):
            self._add(f"{where}: params must be an object", place.node, param=place.own("params"))
            return
        nests_nodes = activity == FOREACH_ACTIVITY
        for key, value in params.items():
            if not (nests_nodes and key == "nodes"):
                self._templates(value, f"{where}: params.", place, str(key))
        if nests_nodes:
            if "items" not in params:
                self._add(f"{where}: params.items is required", place.node, param=place.param("items"))
            parallel = params.get("parallel")
            # A template is checked when it is rendered, as every param is.
            if "parallel" in params and not (
                (isinstance(parallel, str) and is_template(parallel)) or is_parallel_bound(parallel)
            ):
                self._add(
                    f"{where}: params.parallel must be {_PARALLEL_RULE}", place.node, param=place.param("parallel")
                )
            self._node_list(params.get("nodes"), f"{where}: params.nodes", f"{where}: sub-node", place)
        if activity == JOIN_ACTIVITY and "mode" in params and params["mode"] not in JOIN_MODES:
            # Read before the node runs, to know when it may start: so never a template.
            self._add(f'{where}: params.mode must be "all" or "any"', place.node, param=place.param("mode"))

    def _edges(self, edges: object, activities: dict[str, str | None]) -> list[tuple[str, str]]:
        """Check the edges; return (from, to) of those whose both ends exist."""
        if not isinstance(edges, list):
            self._add("edges must be a list")
            return []
        valid: list[tuple[str, str]] = []
        for index, edge in enumerate(edges, start=1):
            label = f"edge {index}"
            if not isinstance(edge, dict):
                self._add(f"{label}: must be an object", edge=index)
                continue
            self._unknown_fields(edge, _EDGE_FIELDS, label, edge=index)
            source, target = (self._edge_end(edge, key, index, activities) for key in ("from", "to"))
            when = edge.get("when")
            if "when" in edge and not isinstance(when, str):
                self._add(f"{label}: when must be a string", edge=index)
            elif when is not None and source and activities[source] == IF_ACTIVITY and when not in ("true", "false"):
                self._add(f'{label}: when must be "true" or "false" after control.if node \'{source}\'', edge=index)
            if source and target:
                valid.append((source, target))
        return valid

    def _edge_end(self, edge: dict[str, Any], key: str, index: int, activities: dict[str, str | None]) -> str | None:
        label = f"edge {index}"
        if key not in edge:
            self._add(f"{label}: missing '{key}'", edge=index)
            return None
        node_id = edge[key]
        if not isinstance(node_id, str):
            self._add(f"{label}: '{key}' must be a string", edge=index)
            return None
        if node_id not in activities:
            self._add(f"{label}: node '{node_id}' does not exist", edge=index)
            return None
        return node_id

    def _graph(self, node_ids: list[str], edges: list[tuple[str, str]], *, start_given: bool) -> None:
        successors: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
        for source, target in edges:
            if target not in successors[source]:
                successors[source].append(target)
        for cycle in _cycles(node_ids, successors):
            # The edge that closes the cycle leaves its last node but one.
            closing = next((i for i, pair in enumerate(edges, start=1) if pair == (cycle[-2], cycle[-1])), None)
            self._add(f"graph has a cycle: {' -> '.join(cycle)}", cycle[-2], closing)
        targets = {target for _, target in edges}
        roots = [node_id for node_id in node_ids if node_id not in targets]
        if len(roots) > 1 and not start_given:
            self._add(f'more than one start node: {", ".join(roots)} (set "start")')

    def _start(self, start: object, activities: dict[str, str | None]) -> None:
        if not isinstance(start, str):
            self._add("start must be a string")
        elif start not in activities:
            self._add(f"start: node '{start}' does not exist")

    def _inputs(self, inputs: object) -> None:
        if not isinstance(inputs, dict):
            self._add("inputs must be an object")
            return
        for name, spec in inputs.items():
            where = f"input '{name}'"
            if not (isinstance(name, str) and _ID.fullmatch(name)):
                self._add(f"{where}: invalid name ({_ID_RULE})")
            if not isinstance(spec, dict):
                self._add(f"{where}: must be an object")
                continue
            self._unknown_fields(spec, _INPUT_FIELDS, where)
            self._input_spec(spec, where)

    def _input_spec(self, spec: dict[str, Any], where: str) -> None:
        kind = spec.get("type")
        if "type" not in spec:
            self._add(f"{where}: missing type")
        elif not isinstance(kind, str) or kind not in INPUT_TYPES:
            self._add(f"{where}: type must be one of {', '.join(INPUT_TYPES)}")
        elif spec.get("default") is not None and not INPUT_TYPES[kind][1](spec["default"]):
            self._add(f"{where}: default must be {INPUT_TYPES[kind][0]}")
        if "required" in spec and not isinstance(spec["required"], bool):
            self._add(f"{where}: required must be a boolean")
        if "description" in spec and not isinstance(spec["description"], str):
            self._add(f"{where}: description must be a string")

    def _outputs(self, outputs: object) -> None:
        if not isinstance(outputs, dict):
            self._add("outputs must be an object")
            return
        self._templates(outputs, "outputs")
