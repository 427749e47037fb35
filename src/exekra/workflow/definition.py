"""Workflow definitions: the typed schema, validation, input resolution and the credential scan.

Used by the hub when a version is saved (problems become a `422`) and by the runner before it runs
anything. The rules themselves live in `validation`.
"""

from __future__ import annotations

import copy
import heapq
from collections.abc import Iterator, Mapping
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from exekra.workflow.errors import DefinitionError
from exekra.workflow.expressions import credential_names, is_template
from exekra.workflow.validation import (
    DEFAULT_MAX_PARALLEL,
    FOREACH_ACTIVITY,
    INPUT_TYPES,
    SUBWORKFLOW_ACTIVITY,
    find_problems,
    walk_strings,
)

__all__ = [
    "DefinitionError",
    "EdgeDefinition",
    "InputSpec",
    "NodeDefinition",
    "SubworkflowCall",
    "WorkflowDefinition",
    "referenced_credentials",
    "resolve_inputs",
    "subworkflow_calls",
    "undeclared_inputs",
    "used_activities",
    "validate_definition",
]

DEFAULT_RETRY_DELAY_SECONDS = 1.0

InputType = Literal["string", "integer", "number", "boolean", "object", "array"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)


class InputSpec(_Model):
    """One declared input: its JSON type, whether it is required, its default and description."""

    type: InputType
    required: bool = False
    default: Any = None
    description: str | None = None

    @property
    def has_default(self) -> bool:
        """True when the definition gives a default (which may be null)."""
        return "default" in self.model_fields_set


class NodeDefinition(_Model):
    """One node: an activity call with its params and run options."""

    id: str
    activity: str
    params: dict[str, Any] = Field(default_factory=dict)
    timeout_seconds: float | None = Field(default=None, alias="timeoutSeconds")
    retries: int = 0
    retry_delay_seconds: float = Field(default=DEFAULT_RETRY_DELAY_SECONDS, alias="retryDelaySeconds")
    continue_on_error: bool = Field(default=False, alias="continueOnError")


class EdgeDefinition(_Model):
    """An edge `from` -> `to`, taken when `when` is absent or equals the source node's `result`."""

    source: str = Field(alias="from")
    target: str = Field(alias="to")
    when: str | None = None


class WorkflowDefinition(_Model):
    """A validated workflow definition (build it with `validate_definition`)."""

    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    nodes: list[NodeDefinition]
    edges: list[EdgeDefinition] = Field(default_factory=list)
    outputs: dict[str, Any] = Field(default_factory=dict)
    start: str | None = None
    strict_inputs: bool = Field(default=False, alias="strictInputs")
    """Refuse executions given inputs that `inputs` does not declare (the hub answers 422)."""
    max_parallel: int = Field(default=DEFAULT_MAX_PARALLEL, alias="maxParallel")
    """How many top-level nodes may run at the same time (1 runs them one at a time)."""

    def start_node(self) -> str:
        """The id of the node the run begins with: `start`, else the only node without incoming edge."""
        targets = {edge.target for edge in self.edges}
        return self.start or next(node.id for node in self.nodes if node.id not in targets)

    def edges_from(self) -> dict[str, list[EdgeDefinition]]:
        """Outgoing edges of every node, in definition order."""
        outgoing: dict[str, list[EdgeDefinition]] = {node.id: [] for node in self.nodes}
        for edge in self.edges:
            outgoing[edge.source].append(edge)
        return outgoing

    def execution_order(self) -> list[NodeDefinition]:
        """All nodes in topological order, ties broken by their position in the definition."""
        position = {node.id: index for index, node in enumerate(self.nodes)}
        outgoing = self.edges_from()
        waiting_on = {node.id: 0 for node in self.nodes}
        for edge in self.edges:
            waiting_on[edge.target] += 1
        ready = [position[node_id] for node_id, count in waiting_on.items() if count == 0]
        heapq.heapify(ready)
        order: list[NodeDefinition] = []
        while ready:
            node = self.nodes[heapq.heappop(ready)]
            order.append(node)
            for edge in outgoing[node.id]:
                waiting_on[edge.target] -= 1
                if waiting_on[edge.target] == 0:
                    heapq.heappush(ready, position[edge.target])
        return order


def validate_definition(data: object, *, known_activities: set[str] | None = None) -> WorkflowDefinition:
    """Check a definition and return it as a `WorkflowDefinition`.

    Raises `DefinitionError` listing every problem found. With `known_activities`, nodes naming any
    other activity are problems too.
    """
    problems = find_problems(data, known_activities)
    if problems:
        raise DefinitionError(problems)
    return WorkflowDefinition.model_validate(data)


def resolve_inputs(
    definition: WorkflowDefinition | Mapping[str, Any], inputs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Apply defaults and check required inputs and types; return the inputs a run sees.

    A missing or null input takes its default, else is an error when required, else is null.
    Inputs the definition does not declare are passed through unchanged (a webhook's `payload`), unless the
    definition sets `strictInputs`: then each is a problem. Raises `DefinitionError` with every problem.
    """
    workflow = definition if isinstance(definition, WorkflowDefinition) else validate_definition(definition)
    if inputs is not None and not isinstance(inputs, Mapping):
        raise DefinitionError(["inputs must be an object"])
    resolved = dict(inputs or {})
    problems: list[str] = []
    if workflow.strict_inputs:
        problems += [f"input '{name}' is not declared (strictInputs)" for name in undeclared_inputs(workflow, resolved)]
    for name, spec in workflow.inputs.items():
        if resolved.get(name) is None:
            if spec.has_default:
                resolved[name] = copy.deepcopy(spec.default)
            elif spec.required:
                problems.append(f"input '{name}' is required")
            else:
                resolved[name] = None
            continue
        phrase, accepts = INPUT_TYPES[spec.type]
        if not accepts(resolved[name]):
            problems.append(f"input '{name}' must be {phrase}")
    if problems:
        raise DefinitionError(problems)
    return resolved


def undeclared_inputs(definition: WorkflowDefinition | Mapping[str, Any], inputs: Mapping[str, Any]) -> list[str]:
    """The names in `inputs` that the definition does not declare, in the order given (a misspelt input, or a
    webhook's `payload`). The CLI and the dashboard warn about them; with `strictInputs` the hub refuses them."""
    if isinstance(definition, WorkflowDefinition):
        declared: Mapping[str, Any] = definition.inputs
    else:
        declared = definition.get("inputs") or {}
    return [name for name in inputs if name not in declared]


def _every_node(definition: WorkflowDefinition | Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(top-level node id, node) of every node with an activity, a foreach's nested nodes included."""
    data = definition.model_dump(by_alias=True) if isinstance(definition, WorkflowDefinition) else definition
    pending: list[tuple[str | None, Any]] = [(None, node) for node in data.get("nodes") or []]
    while pending:
        top, node = pending.pop()
        if not isinstance(node, Mapping) or not isinstance(node.get("activity"), str):
            continue
        top = top or str(node.get("id"))
        yield top, node
        params = node.get("params")
        nested = params.get("nodes") if node["activity"] == FOREACH_ACTIVITY and isinstance(params, Mapping) else None
        if isinstance(nested, list):
            pending.extend((top, child) for child in nested)


def used_activities(definition: WorkflowDefinition | Mapping[str, Any]) -> set[str]:
    """The names of the activities the definition's nodes call, a foreach's nested nodes included."""
    return {node["activity"] for _, node in _every_node(definition)}


class SubworkflowCall(NamedTuple):
    """A `workflow.run` whose workflow is written literally: the top-level node holding it, the workflow (name or
    id), and the version when that is a literal number too (else None: the published one)."""

    node: str
    workflow: str
    version: int | None


def subworkflow_calls(definition: WorkflowDefinition | Mapping[str, Any]) -> list[SubworkflowCall]:
    """The definition's `workflow.run` nodes that name their workflow literally (no template), in any order."""
    calls = []
    for top, node in _every_node(definition):
        params = node.get("params")
        if node["activity"] != SUBWORKFLOW_ACTIVITY or not isinstance(params, Mapping):
            continue
        workflow, version = params.get("workflow"), params.get("version")
        if isinstance(workflow, str) and workflow and not is_template(workflow):
            literal = version if isinstance(version, int) and not isinstance(version, bool) else None
            calls.append(SubworkflowCall(top, workflow, literal))
    return calls


def referenced_credentials(definition: WorkflowDefinition | Mapping[str, Any]) -> set[str]:
    """Names of the credentials the definition's templates read (`credentials.<name>.<field>`).

    A static scan of node params (nested ones included) and outputs; only literal names count.
    """
    data = definition.model_dump(by_alias=True) if isinstance(definition, WorkflowDefinition) else definition
    names: set[str] = set()
    for text, _ in walk_strings([data.get("nodes"), data.get("outputs")], ""):
        names |= credential_names(text)
    return names
