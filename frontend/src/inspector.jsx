// The side panel: the selected node's form (activity, parameters, run options, connections) or edge.
import { useState } from "react";
import { ParamField } from "./fields.jsx";
import { IF_ACTIVITY } from "./model.js";

const ID_RULE = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;

function problemFor(problems, param) {
  const match = problems.find((p) => p.param && (p.param === param || p.param.startsWith(`${param}.`) || p.param.startsWith(`${param}[`)));
  return match ? match.message : null;
}

function NumberOption({ label, value, onChange, onCommit, readOnly, hint }) {
  const [text, setText] = useState(value === undefined ? "" : String(value));
  return (
    <label className="sx-option">
      <span>{label}</span>
      <input
        type="text"
        inputMode="decimal"
        value={text}
        readOnly={readOnly}
        placeholder={hint}
        onChange={(event) => {
          setText(event.target.value);
          const trimmed = event.target.value.trim();
          onChange(trimmed === "" ? undefined : /^-?\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) : trimmed);
        }}
        onBlur={onCommit}
      />
    </label>
  );
}

export function NodeInspector({ graph, node, catalogue, problems, scopeFor, readOnly, actions }) {
  const definitionNode = node.data.node;
  const activity = catalogue.byName.get(definitionNode.activity);
  const schema = (activity && activity.params) || { type: "object", properties: {} };
  const properties = schema.properties || {};
  const required = new Set(schema.required || []);
  const params = definitionNode.params && typeof definitionNode.params === "object" ? definitionNode.params : {};
  const extra = Object.keys(params).filter((key) => !(key in properties));
  const [idText, setIdText] = useState(definitionNode.id);
  const [idError, setIdError] = useState(null);
  const [target, setTarget] = useState("");
  const others = graph.nodes.filter((n) => n.id !== node.id);
  const nodeProblems = problems.filter((p) => p.nodeId === node.id);
  const general = nodeProblems.filter((p) => !p.param || !Object.keys(properties).some((k) => problemFor([p], k)));
  const scope = scopeFor(node.id);

  const renameTo = () => {
    const wanted = idText.trim();
    if (wanted === definitionNode.id) return setIdError(null);
    if (!ID_RULE.test(wanted)) return setIdError("letters, digits, '_' and '-', starting with a letter or '_'");
    if (graph.nodes.some((n) => n.id === wanted)) return setIdError(`a node named '${wanted}' exists`);
    setIdError(null);
    actions.rename(node.id, wanted);
  };
  const setParam = (key, value) => {
    const next = { ...params };
    if (value === undefined) delete next[key];
    else next[key] = value;
    actions.updateNode(node.id, { params: next }, true);
  };
  const setOption = (key, value) => actions.updateNode(node.id, { [key]: value }, true);

  return (
    <section className="sx-inspector" aria-label={`Node ${definitionNode.id}`}>
      <h2>Node</h2>
      {general.length > 0 && (
        <ul className="sx-problems-here" role="alert">
          {general.map((p, i) => (
            <li key={i}>{p.message}</li>
          ))}
        </ul>
      )}
      <label className="sx-option">
        <span>Id</span>
        <input
          type="text"
          value={idText}
          readOnly={readOnly}
          onChange={(event) => setIdText(event.target.value)}
          onBlur={renameTo}
          onKeyDown={(event) => event.key === "Enter" && renameTo()}
        />
      </label>
      {idError && <small className="sx-error">{idError}</small>}
      <label className="sx-option">
        <span>Activity</span>
        <select
          value={definitionNode.activity || ""}
          disabled={readOnly}
          onChange={(event) => actions.updateNode(node.id, { activity: event.target.value }, false)}
        >
          {!activity && <option value={definitionNode.activity || ""}>{definitionNode.activity || "(none)"}</option>}
          {catalogue.list.map((a) => (
            <option key={a.name} value={a.name}>
              {a.name}
            </option>
          ))}
        </select>
      </label>
      {activity && activity.description && <p className="sx-hint">{activity.description}</p>}

      <h3>Parameters</h3>
      {Object.entries(properties).map(([key, property]) => (
        <ParamField
          key={`${node.id}:${key}`}
          name={key}
          schema={property}
          value={params[key]}
          required={required.has(key)}
          problem={problemFor(nodeProblems, key)}
          scope={scope}
          readOnly={readOnly}
          onChange={(value) => setParam(key, value)}
          onCommit={actions.commitEdit}
        />
      ))}
      {extra.map((key) => (
        <ParamField
          key={`${node.id}:${key}`}
          name={key}
          schema={{ description: "not in this activity's schema" }}
          value={params[key]}
          required={false}
          problem={problemFor(nodeProblems, key)}
          scope={scope}
          readOnly={readOnly}
          onChange={(value) => setParam(key, value)}
          onCommit={actions.commitEdit}
        />
      ))}
      {!Object.keys(properties).length && !extra.length && <p className="sx-muted">This activity takes no parameters.</p>}

      <h3>Run options</h3>
      <NumberOption
        key={`${node.id}:timeout`}
        label="Timeout (seconds)"
        hint="none"
        value={definitionNode.timeoutSeconds}
        readOnly={readOnly}
        onChange={(v) => setOption("timeoutSeconds", v)}
        onCommit={actions.commitEdit}
      />
      <NumberOption
        key={`${node.id}:retries`}
        label="Retries"
        hint="0"
        value={definitionNode.retries}
        readOnly={readOnly}
        onChange={(v) => setOption("retries", v)}
        onCommit={actions.commitEdit}
      />
      <NumberOption
        key={`${node.id}:delay`}
        label="First retry after (seconds)"
        hint="1"
        value={definitionNode.retryDelaySeconds}
        readOnly={readOnly}
        onChange={(v) => setOption("retryDelaySeconds", v)}
        onCommit={actions.commitEdit}
      />
      <label className="sx-check">
        <input
          type="checkbox"
          checked={definitionNode.continueOnError === true}
          disabled={readOnly}
          onChange={(event) => actions.updateNode(node.id, { continueOnError: event.target.checked || undefined }, false)}
        />
        Continue on error
      </label>

      {!readOnly && (
        <>
          <h3>Connect</h3>
          <div className="sx-inline">
            <label className="sx-visually-hidden" htmlFor={`connect-${node.id}`}>
              Connect {definitionNode.id} to
            </label>
            <select id={`connect-${node.id}`} value={target} onChange={(event) => setTarget(event.target.value)}>
              <option value="">then run…</option>
              {others.map((n) => (
                <option key={n.id} value={n.id}>
                  {n.id}
                </option>
              ))}
            </select>
            <button type="button" disabled={!target} onClick={() => actions.connect(node.id, target)}>
              Connect
            </button>
          </div>
          <button type="button" className="sx-danger" onClick={() => actions.remove([node.id], [])}>
            Delete node
          </button>
        </>
      )}
    </section>
  );
}

export function EdgeInspector({ graph, edge, problems, readOnly, actions }) {
  const index = graph.edges.findIndex((e) => e.id === edge.id) + 1;
  const source = graph.nodes.find((n) => n.id === edge.source);
  const afterIf = source && source.data.node.activity === IF_ACTIVITY;
  const when = edge.data.edge.when;
  const edgeProblems = problems.filter((p) => p.edgeId === edge.id);
  return (
    <section className="sx-inspector" aria-label={`Edge ${index}`}>
      <h2>Edge {index}</h2>
      {edgeProblems.length > 0 && (
        <ul className="sx-problems-here" role="alert">
          {edgeProblems.map((p, i) => (
            <li key={i}>{p.message}</li>
          ))}
        </ul>
      )}
      <p>
        <code>{edge.source}</code> → <code>{edge.target}</code>
      </p>
      <label className="sx-option">
        <span>When</span>
        {afterIf ? (
          <select
            value={when === undefined ? "" : String(when)}
            disabled={readOnly}
            onChange={(event) => actions.setWhen(edge.id, event.target.value === "" ? undefined : event.target.value)}
          >
            <option value="">always</option>
            <option value="true">true</option>
            <option value="false">false</option>
            {when !== undefined && when !== "true" && when !== "false" && <option value={String(when)}>{String(when)}</option>}
          </select>
        ) : (
          <input
            type="text"
            value={when === undefined ? "" : String(when)}
            readOnly={readOnly}
            placeholder="always"
            onChange={(event) => actions.setWhen(edge.id, event.target.value === "" ? undefined : event.target.value, true)}
            onBlur={actions.commitEdit}
          />
        )}
      </label>
      <p className="sx-hint">
        {afterIf
          ? "After control.if, the edge is taken when the condition's result matches."
          : "An edge with when is taken only when the source node's result equals it."}
      </p>
      {!readOnly && (
        <button type="button" className="sx-danger" onClick={() => actions.remove([], [edge.id])}>
          Delete edge
        </button>
      )}
    </section>
  );
}
