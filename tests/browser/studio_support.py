"""Helpers of the Studio and operator-page browser tests: docs examples, generated definitions, axe-core."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from exekra.workflow import validate_definition
from exekra.workflow.activities import BUILTIN

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

_JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.S)


def docs_examples() -> list[tuple[str, dict[str, Any]]]:
    """Every workflow definition in a JSON block of docs/*.md (a bare one, or one inside `definition`)."""
    found: list[tuple[str, dict[str, Any]]] = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        for index, block in enumerate(_JSON_BLOCK.findall(doc.read_text(encoding="utf-8"))):
            try:
                value = json.loads(block)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "id" in value and "activity" in value:
                value = {"nodes": [value]}  # one node shown on its own: as a definition of that node
            candidates = [value, value.get("definition")] if isinstance(value, dict) else []
            for candidate in candidates:
                if isinstance(candidate, dict) and isinstance(candidate.get("nodes"), list):
                    found.append((f"{doc.name}#{index + 1}", candidate))
    return found


def without_ui(definition: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in definition.items() if key != "ui"}


# --- generated valid definitions ------------------------------------------------------------------------------

_IDS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,12}", fullmatch=True)
_TEXT = st.text(alphabet=st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=20)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), _TEXT)
_TEMPLATES = st.sampled_from(["{{ inputs.name }}", "x {{ vars.a }} y", "{{ execution.id }}", "{{ 1 + 2 }}"])
_VALUES = st.recursive(
    st.one_of(_SCALARS, _TEMPLATES),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_IDS, inner, max_size=3)),
    max_leaves=6,
)
_ACTIVITIES = sorted(name for name in BUILTIN if name != "control.foreach")
_INPUT_SPECS = st.sampled_from(
    [
        {"type": "string"},
        {"type": "string", "required": True, "description": "who"},
        {"type": "integer", "default": 3},
        {"type": "boolean", "default": False},
        {"type": "array", "default": [1, 2]},
        {"type": "object"},
    ]
)


@st.composite
def valid_definitions(draw: st.DrawFn) -> dict[str, Any]:
    """A valid definition: unique ids, a DAG whose first node is the only start, `when` after control.if."""
    ids = draw(st.lists(_IDS, min_size=1, max_size=8, unique=True))
    nodes = []
    for node_id in ids:
        node: dict[str, Any] = {"id": node_id, "activity": draw(st.sampled_from(_ACTIVITIES))}
        if draw(st.booleans()):
            node["params"] = draw(st.dictionaries(_IDS, _VALUES, max_size=4))
        for key, strategy in (
            ("timeoutSeconds", st.integers(1, 600)),
            ("retries", st.integers(0, 10)),
            ("retryDelaySeconds", st.floats(0, 30, allow_nan=False)),
            ("continueOnError", st.booleans()),
        ):
            if draw(st.integers(0, 3)) == 0:
                node[key] = draw(strategy)
        nodes.append(node)
    edges = []
    for index in range(1, len(ids)):
        sources = draw(st.lists(st.integers(0, index - 1), min_size=1, max_size=2, unique=True))
        for source in sources:
            edge: dict[str, Any] = {"from": ids[source], "to": ids[index]}
            if nodes[source]["activity"] == "control.if" and draw(st.booleans()):
                edge["when"] = draw(st.sampled_from(["true", "false"]))
            edges.append(edge)
    definition: dict[str, Any] = {"nodes": nodes}
    if edges or draw(st.booleans()):
        definition["edges"] = draw(st.permutations(edges))
    if draw(st.booleans()):
        definition["inputs"] = draw(st.dictionaries(_IDS, _INPUT_SPECS, max_size=3))
    if draw(st.booleans()):
        definition["outputs"] = draw(st.dictionaries(_IDS, st.one_of(_TEMPLATES, _SCALARS), max_size=3))
    if draw(st.booleans()):
        definition["start"] = ids[0]
    keys = draw(st.permutations(list(definition)))
    ordered = {key: definition[key] for key in keys}
    validate_definition(ordered)  # the strategy only makes valid definitions: this fails the test otherwise
    return ordered


def axe_violations(page: Any, **options: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now (axe is vendored, injected here)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Evaluated through the browser's debugging protocol: the page's CSP forbids injected inline scripts.
        page.evaluate(AXE.read_text() + "\n;undefined")
    run_options = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, **options}
    result: dict[str, Any] = page.evaluate("(options) => window.axe.run(document, options)", run_options)
    return [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]


def horizontal_overflow(page: Any) -> int:
    """How many pixels the page is wider than the window (0 when nothing sticks out)."""
    width: int = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    return max(0, width)
