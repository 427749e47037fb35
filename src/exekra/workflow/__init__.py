"""Workflow definitions and their execution: a pure library shared by the hub and the runner.

The hub validates definitions (`validate_definition`), checks inputs (`resolve_inputs`) and learns
which credentials a run needs (`referenced_credentials`); the runner's worker process runs them
(`run_workflow`). See docs/workflows.md for the format and every activity.
"""

from exekra.workflow.definition import (
    WorkflowDefinition,
    referenced_credentials,
    resolve_inputs,
    validate_definition,
)
from exekra.workflow.engine import run_workflow
from exekra.workflow.errors import (
    ActivityError,
    DefinitionError,
    ExpressionError,
    WorkflowError,
    WorkflowFailed,
    WorkflowStopped,
)

__all__ = [
    "ActivityError",
    "DefinitionError",
    "ExpressionError",
    "WorkflowDefinition",
    "WorkflowError",
    "WorkflowFailed",
    "WorkflowStopped",
    "referenced_credentials",
    "resolve_inputs",
    "run_workflow",
    "validate_definition",
]
