// The live execution graph on an execution's page (/executions/{id}): the version's nodes with what happened
// to each. The states come from the hub (`#run-graph-states`, refreshed by the page's log poll whenever a
// node starts or ends); selecting a node shows only its lines in the log below.
import { useEffect, useMemo, useState } from "react";
import { ReadOnlyFlow } from "./flow.jsx";
import { placeMissing } from "./layout.js";
import { graphFromDefinition } from "./model.js";
import { nodeTypes } from "./Studio.jsx";

export const RUN_STATES = ["NOT_REACHED", "RUNNING", "COMPLETED", "FAILED", "SKIPPED", "STOPPED"];

/** A node's state in words, with its duration once it has ended. */
export function runLabel(run) {
  const state = (run && run.state) || "NOT_REACHED";
  const words = state.toLowerCase().replace("_", " ");
  const ms = run && run.durationMs;
  if (ms === null || ms === undefined) return words;
  return `${words} · ${ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`}`;
}

function readStates() {
  const box = document.getElementById("run-graph-states");
  return (box && box.dataset.states) || "[]";
}

/** Show only the log lines of `node` (every line when null), now and as lines arrive. */
function useLogFilter(node) {
  useEffect(() => {
    const box = document.getElementById("log-lines");
    if (!box) return undefined;
    const apply = () => {
      for (const line of box.querySelectorAll(".log-line")) line.hidden = node !== null && line.dataset.node !== node;
    };
    apply();
    box.dataset.filter = node || "";
    const observer = new MutationObserver(apply);
    observer.observe(box, { childList: true });
    return () => {
      observer.disconnect();
      for (const line of box.querySelectorAll(".log-line")) line.hidden = false;
    };
  }, [node]);
}

export function RunGraph({ boot }) {
  const base = useMemo(() => placeMissing(graphFromDefinition(boot.definition)), [boot]);
  const [statesText, setStatesText] = useState(readStates);
  const [filter, setFilter] = useState(null);
  useEffect(() => {
    const update = () => setStatesText(readStates());
    document.body.addEventListener("htmx:afterSettle", update);
    return () => document.body.removeEventListener("htmx:afterSettle", update);
  }, []);
  useLogFilter(filter);

  const runs = useMemo(() => new Map(JSON.parse(statesText).map((run) => [run.id, run])), [statesText]);
  const nodes = base.nodes.map((n) => ({
    ...n,
    selected: n.id === filter,
    data: { ...n.data, run: runs.get(n.id) || { state: "NOT_REACHED" } },
  }));
  const edges = base.edges.map((e) => {
    const when = e.data.edge && e.data.edge.when;
    return { ...e, label: when === undefined || when === null ? undefined : `when: ${when}` };
  });
  const counts = RUN_STATES.map((state) => [state, nodes.filter((n) => n.data.run.state === state).length]).filter(
    ([, count]) => count > 0
  );
  // Selection by click or by keyboard (a focused node takes Enter) arrives as "select" changes.
  const onNodesChange = (changes) => {
    for (const change of changes) {
      if (change.type !== "select") continue;
      if (change.selected) setFilter(change.id);
      else setFilter((current) => (current === change.id ? null : current));
    }
  };
  return (
    <div className="sx-run">
      <div className="sx-canvas sx-canvas-run">
        <ReadOnlyFlow
          nodes={nodes}
          edges={edges}
          nodeTypes={nodeTypes}
          onNodesChange={onNodesChange}
          onPaneClick={() => setFilter(null)}
          elementsSelectable
          minZoom={0.2}
        />
      </div>
      <div className="sx-run-foot">
        <ul className="sx-run-legend" aria-label="Nodes by state">
          {counts.map(([state, count]) => (
            <li key={state} className={`sx-run-tag sx-run-${state.toLowerCase()}`}>
              {count} {state.toLowerCase().replace("_", " ")}
            </li>
          ))}
        </ul>
        <p className="sx-run-filter" aria-live="polite">
          {filter === null ? (
            "The log shows every line."
          ) : (
            <>
              The log shows node <code>{filter}</code> only.{" "}
              <button type="button" className="sx-small" onClick={() => setFilter(null)}>
                Show every line
              </button>
            </>
          )}
        </p>
      </div>
    </div>
  );
}
