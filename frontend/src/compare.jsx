// Two versions compared as graphs: added, removed and changed nodes highlighted.
import { useState } from "react";
import { api } from "./api.js";
import { ReadOnlyFlow } from "./flow.jsx";
import { autoLayout } from "./layout.js";
import { diffDefinitions, graphFromDefinition } from "./model.js";

function unionGraph(before, after, diff) {
  const graph = graphFromDefinition(after);
  const removed = graphFromDefinition(before).nodes.filter((n) => diff.removed.includes(n.id));
  const removedEdges = graphFromDefinition(before).edges.filter(
    (e) => diff.removed.includes(e.source) || diff.removed.includes(e.target)
  );
  const nodes = [...graph.nodes, ...removed].map((n) => ({
    ...n,
    position: null,
    data: {
      ...n.data,
      diff: diff.added.includes(n.id) ? "added" : diff.removed.includes(n.id) ? "removed" : diff.changed.includes(n.id) ? "changed" : null,
    },
  }));
  const edges = [...graph.edges, ...removedEdges].map((e, i) => ({ ...e, id: `c${i}`, label: e.data.edge.when }));
  return autoLayout({ ...graph, nodes, edges });
}

export function Compare({ workflowId, versions, nodeTypes }) {
  const numbers = versions.map((v) => v.number);
  const [from, setFrom] = useState(String(numbers[1] ?? numbers[0] ?? ""));
  const [to, setTo] = useState(String(numbers[0] ?? ""));
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const run = async () => {
    setError(null);
    try {
      const [a, b] = await Promise.all(
        [from, to].map((n) => api("GET", `/api/workflows/${workflowId}/versions/${n}`).then((r) => r.version.definition))
      );
      const diff = diffDefinitions(a, b);
      setResult({ diff, graph: unionGraph(a, b, diff), from, to });
    } catch (err) {
      setError(err.message);
    }
  };
  const choice = (label, value, set) => (
    <label>
      {label}{" "}
      <select value={value} onChange={(event) => set(event.target.value)}>
        {numbers.map((n) => (
          <option key={n} value={String(n)}>
            v{n}
          </option>
        ))}
      </select>
    </label>
  );
  return (
    <div className="sx-compare">
      <div className="sx-inline">
        {choice("From", from, setFrom)}
        {choice("to", to, setTo)}
        <button type="button" onClick={run} disabled={!from || !to}>
          Compare
        </button>
      </div>
      {error && <p className="sx-error">{error}</p>}
      {result && (
        <>
          <p className="sx-legend" aria-live="polite">
            v{result.from} → v{result.to}: <span className="sx-tag sx-tag-added">{result.diff.added.length} added</span>{" "}
            <span className="sx-tag sx-tag-removed">{result.diff.removed.length} removed</span>{" "}
            <span className="sx-tag sx-tag-changed">{result.diff.changed.length} changed</span>{" "}
            · edges +{result.diff.edgesAdded.length} −{result.diff.edgesRemoved.length}
          </p>
          <ul className="sx-diff-list">
            {result.diff.added.map((id) => (
              <li key={`a${id}`}>added <code>{id}</code></li>
            ))}
            {result.diff.removed.map((id) => (
              <li key={`r${id}`}>removed <code>{id}</code></li>
            ))}
            {result.diff.changed.map((id) => (
              <li key={`c${id}`}>changed <code>{id}</code></li>
            ))}
          </ul>
          <div className="sx-canvas sx-canvas-compare">
            <ReadOnlyFlow
              nodes={result.graph.nodes}
              edges={result.graph.edges}
              nodeTypes={nodeTypes}
              elementsSelectable={false}
            />
          </div>
        </>
      )}
    </div>
  );
}
