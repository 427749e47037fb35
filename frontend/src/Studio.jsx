// Studio: the visual workflow designer of one workflow (/workflows/{id}/design).
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  MiniMap,
  Position,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
} from "@xyflow/react";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, problemsOf } from "./api.js";
import { Compare } from "./compare.jsx";
import { runLabel } from "./run.jsx";
import { EdgeInspector, NodeInspector } from "./inspector.jsx";
import { autoLayout, placeMissing } from "./layout.js";
import {
  ancestors,
  canvasEdge,
  canvasNode,
  definitionFromGraph,
  definitionText,
  freshNodeId,
  graphFromDefinition,
  renameNode,
  whenForNewEdge,
} from "./model.js";
import { InputsEditor, WorkflowSettings } from "./settings.jsx";

const HISTORY_LIMIT = 100;
const TABS = [
  ["canvas", "Canvas"],
  ["json", "JSON"],
  ["settings", "Settings"],
  ["compare", "Compare versions"],
];

function ActivityNode({ data, selected }) {
  const node = data.node || {};
  const problems = data.problems || [];
  const classes = ["sx-node", `sx-cat-${(data.category || "other").toLowerCase()}`];
  if (problems.length) classes.push("sx-node-problem");
  if (selected) classes.push("sx-node-selected");
  if (data.diff) classes.push(`sx-diff-${data.diff}`);
  if (data.run) classes.push(`sx-run-${data.run.state.toLowerCase()}`);
  return (
    <div className={classes.join(" ")} data-node-id={node.id}>
      <Handle type="target" position={Position.Left} />
      <div className="sx-node-activity">{String(node.activity ?? "?")}</div>
      <div className="sx-node-id">{String(node.id ?? "(no id)")}</div>
      {data.diff && <div className="sx-node-diff">{data.diff}</div>}
      {data.run && <div className="sx-node-run">{runLabel(data.run)}</div>}
      {problems.length > 0 && (
        <div className="sx-node-message" role="note">
          ⚠ {problems[0].message}
          {problems.length > 1 ? ` (+${problems.length - 1} more)` : ""}
        </div>
      )}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

export const nodeTypes = { activity: ActivityNode };

function catalogueOf(activities) {
  const list = [...activities].sort((a, b) => a.name.localeCompare(b.name));
  return { list, byName: new Map(list.map((a) => [a.name, a])) };
}

/** Located problems of a 422, tied to canvas node and edge ids (edge indexes shift as edges change). */
function locate(problems, graph) {
  return problems.map((p) => ({
    ...p,
    nodeId: p.node !== undefined && graph.nodes.some((n) => n.id === p.node) ? p.node : null,
    edgeId: typeof p.edge === "number" && graph.edges[p.edge - 1] ? graph.edges[p.edge - 1].id : null,
  }));
}

function Palette({ catalogue, onAdd, readOnly }) {
  const [query, setQuery] = useState("");
  const wanted = query.trim().toLowerCase();
  const groups = new Map();
  for (const a of catalogue.list) {
    if (wanted && !`${a.name} ${a.description} ${a.category}`.toLowerCase().includes(wanted)) continue;
    if (!groups.has(a.category)) groups.set(a.category, []);
    groups.get(a.category).push(a);
  }
  return (
    <nav className="sx-palette" aria-label="Activities">
      <h2>Activities</h2>
      <label className="sx-visually-hidden" htmlFor="sx-palette-search">
        Search activities
      </label>
      <input
        id="sx-palette-search"
        type="search"
        placeholder="Search activities"
        value={query}
        onChange={(event) => setQuery(event.target.value)}
      />
      {[...groups.entries()].map(([category, items]) => (
        <div key={category} className="sx-palette-group">
          <h3>{category}</h3>
          {items.map((a) => (
            <button
              type="button"
              key={a.name}
              className="sx-palette-item"
              title={a.description}
              disabled={readOnly}
              draggable={!readOnly}
              onDragStart={(event) => event.dataTransfer.setData("application/x-exekra-activity", a.name)}
              onClick={() => onAdd(a.name)}
            >
              <span className="sx-visually-hidden">Add </span>
              {a.name}
            </button>
          ))}
        </div>
      ))}
      {!groups.size && <p className="sx-muted">No activity matches.</p>}
    </nav>
  );
}

function Designer({ boot }) {
  const flow = useReactFlow();
  const readOnly = !boot.canEdit;
  const [graph, setGraph] = useState(() => placeMissing(graphFromDefinition(boot.latest.definition)));
  const [past, setPast] = useState([]);
  const [future, setFuture] = useState([]);
  const pending = useRef(null); // the graph before a field edit in progress (one undo step per edit)
  const dragOrigin = useRef(null);
  const [selection, setSelection] = useState(null);
  const [tab, setTab] = useState("canvas");
  const [catalogue, setCatalogue] = useState(catalogueOf([]));
  const [credentials, setCredentials] = useState([]);
  const [problems, setProblems] = useState([]);
  const [status, setStatus] = useState({ kind: "info", text: "" });
  const [versions, setVersions] = useState(boot.versions);
  const [latest, setLatest] = useState({ number: boot.latest.number, published: boot.latest.published });
  const [saved, setSaved] = useState(() => JSON.stringify(boot.latest.definition));
  const [jsonText, setJsonText] = useState("");
  const [jsonError, setJsonError] = useState(null);
  const [workflow, setWorkflow] = useState(boot.workflow);
  const [initialViewport] = useState(() => {
    const stored = graph.ui && graph.ui.viewport;
    return stored && [stored.x, stored.y, stored.zoom].every(Number.isFinite) ? stored : null;
  });

  useEffect(() => {
    api("GET", "/api/activities")
      .then((r) => setCatalogue(catalogueOf(r.activities)))
      .catch((err) => setStatus({ kind: "error", text: `Activities could not be loaded: ${err.message}` }));
    if (boot.canEdit) {
      api("GET", "/api/credentials?limit=200")
        .then((r) => setCredentials(r.credentials))
        .catch(() => setCredentials([]));
    }
  }, [boot.canEdit]);

  const definition = useCallback(() => definitionFromGraph(graph, flow.getViewport()), [graph, flow]);
  const dirty = useMemo(() => {
    const current = definitionFromGraph(graph);
    const before = JSON.parse(saved);
    delete current.ui;
    delete before.ui;
    return JSON.stringify(current) !== JSON.stringify(before);
  }, [graph, saved]);

  // --- history ---------------------------------------------------------------------------------------
  const commit = useCallback(
    (next) => {
      setPast((p) => [...p.slice(-HISTORY_LIMIT + 1), pending.current || graph]);
      pending.current = null;
      setFuture([]);
      setGraph(next);
    },
    [graph]
  );
  const live = useCallback(
    (next) => {
      if (!pending.current) pending.current = graph;
      setGraph(next);
    },
    [graph]
  );
  const commitEdit = useCallback(() => {
    if (!pending.current) return;
    const before = pending.current;
    pending.current = null;
    setPast((p) => [...p.slice(-HISTORY_LIMIT + 1), before]);
    setFuture([]);
  }, []);
  const undo = useCallback(() => {
    commitEdit();
    setPast((p) => {
      if (!p.length) return p;
      setFuture((f) => [graph, ...f]);
      setGraph(p[p.length - 1]);
      return p.slice(0, -1);
    });
  }, [graph, commitEdit]);
  const redo = useCallback(() => {
    setFuture((f) => {
      if (!f.length) return f;
      setPast((p) => [...p, graph]);
      setGraph(f[0]);
      return f.slice(1);
    });
  }, [graph]);

  // --- edits -----------------------------------------------------------------------------------------
  const addNode = useCallback(
    (activity, position) => {
      const id = freshNodeId(graph, activity);
      const anchor = selection && selection.type === "node" ? graph.nodes.find((n) => n.id === selection.id) : null;
      const last = anchor || graph.nodes[graph.nodes.length - 1];
      const where = position || (last ? { x: last.position.x + 300, y: last.position.y } : { x: 40, y: 40 });
      let next = { ...graph, nodes: [...graph.nodes, canvasNode({ id, activity, params: {} }, where)] };
      if (last && !position) {
        const when = whenForNewEdge(next, last.id);
        next = { ...next, edges: [...next.edges, canvasEdge(when ? { from: last.id, to: id, when } : { from: last.id, to: id })] };
      }
      commit(next);
      setSelection({ type: "node", id });
      if (!position) window.setTimeout(() => flow.fitView({ padding: 0.2, maxZoom: 1, duration: 0 }), 50);
      setStatus({ kind: "info", text: `Added ${activity} as ${id}${last && !position ? `, after ${last.id}` : ""}.` });
    },
    [graph, selection, commit, flow]
  );
  const connect = useCallback(
    (source, target) => {
      if (!source || !target || source === target) return;
      const when = whenForNewEdge(graph, source);
      const edge = canvasEdge(when ? { from: source, to: target, when } : { from: source, to: target });
      commit({ ...graph, edges: [...graph.edges, edge] });
      setSelection({ type: "edge", id: edge.id });
    },
    [graph, commit]
  );
  const remove = useCallback(
    (nodeIds, edgeIds) => {
      const gone = new Set(nodeIds);
      const edgesGone = new Set(edgeIds);
      commit({
        ...graph,
        nodes: graph.nodes.filter((n) => !gone.has(n.id)),
        edges: graph.edges.filter((e) => !edgesGone.has(e.id) && !gone.has(e.source) && !gone.has(e.target)),
      });
      setSelection(null);
    },
    [graph, commit]
  );
  const updateNode = useCallback(
    (id, fields, typing) => {
      const nodes = graph.nodes.map((n) => {
        if (n.id !== id) return n;
        const node = { ...n.data.node };
        for (const [key, value] of Object.entries(fields)) {
          if (value === undefined) delete node[key];
          else node[key] = value;
        }
        return { ...n, data: { ...n.data, node } };
      });
      (typing ? live : commit)({ ...graph, nodes });
    },
    [graph, live, commit]
  );
  const setWhen = useCallback(
    (id, when, typing) => {
      const edges = graph.edges.map((e) => {
        if (e.id !== id) return e;
        const edge = { ...e.data.edge };
        if (when === undefined) delete edge.when;
        else edge.when = when;
        return { ...e, data: { ...e.data, edge } };
      });
      (typing ? live : commit)({ ...graph, edges });
    },
    [graph, live, commit]
  );
  const rename = useCallback(
    (oldId, newId) => {
      commit(renameNode(graph, oldId, newId));
      setSelection({ type: "node", id: newId });
    },
    [graph, commit]
  );
  const setMetaField = useCallback(
    (key, value) => {
      const fields = { ...graph.meta.fields };
      const keys = graph.meta.keys.includes(key) ? graph.meta.keys : [...graph.meta.keys, key];
      if (value === undefined) delete fields[key];
      else fields[key] = value;
      commit({ ...graph, meta: { ...graph.meta, keys, fields } });
    },
    [graph, commit]
  );
  const layout = useCallback(() => {
    commit(autoLayout(graph));
    window.requestAnimationFrame(() => flow.fitView({ padding: 0.2 }));
  }, [graph, commit, flow]);

  // --- React Flow callbacks ---------------------------------------------------------------------------
  // Selection is the designer's own state (the inspector follows it); React Flow reports clicks as changes.
  const follow = useCallback((type, changes) => {
    const picked = changes.find((c) => c.type === "select" && c.selected);
    if (picked) setSelection({ type, id: picked.id });
    else if (changes.some((c) => c.type === "select"))
      setSelection((current) => (current && current.type === type && changes.some((c) => c.id === current.id) ? null : current));
  }, []);
  const onNodesChange = useCallback(
    (changes) => {
      follow("node", changes);
      const kept = changes.filter((c) => c.type !== "remove" && c.type !== "select");
      if (kept.length) setGraph((g) => ({ ...g, nodes: applyNodeChanges(kept, g.nodes) }));
    },
    [follow]
  );
  const onEdgesChange = useCallback(
    (changes) => {
      follow("edge", changes);
      const kept = changes.filter((c) => c.type !== "remove" && c.type !== "select");
      if (kept.length) setGraph((g) => ({ ...g, edges: applyEdgeChanges(kept, g.edges) }));
    },
    [follow]
  );
  const onDelete = useCallback(
    ({ nodes, edges }) => remove(nodes.map((n) => n.id), edges.map((e) => e.id)),
    [remove]
  );
  const onDrop = useCallback(
    (event) => {
      event.preventDefault();
      const activity = event.dataTransfer.getData("application/x-exekra-activity");
      if (activity) addNode(activity, flow.screenToFlowPosition({ x: event.clientX, y: event.clientY }));
    },
    [addNode, flow]
  );

  // --- keyboard shortcuts -----------------------------------------------------------------------------
  useEffect(() => {
    const onKey = (event) => {
      const inField = event.target.closest && event.target.closest("input, textarea, select");
      if (inField || !(event.ctrlKey || event.metaKey)) return;
      const key = event.key.toLowerCase();
      if (key === "z" && !event.shiftKey) {
        event.preventDefault();
        undo();
      } else if ((key === "z" && event.shiftKey) || key === "y") {
        event.preventDefault();
        redo();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [undo, redo]);

  // --- save and publish --------------------------------------------------------------------------------
  const save = useCallback(async () => {
    commitEdit();
    const def = definition();
    setStatus({ kind: "info", text: "Saving…" });
    try {
      const r = await api("POST", `/api/workflows/${boot.workflow.id}/versions`, { definition: def }, boot.csrf);
      setProblems([]);
      setSaved(JSON.stringify(def));
      setLatest({ number: r.version.number, published: false });
      setVersions((v) => [{ number: r.version.number, published: false }, ...v]);
      setStatus({ kind: "ok", text: `Saved version ${r.version.number} as a draft.` });
      return r.version;
    } catch (err) {
      if (err.status === 422) {
        const located = locate(problemsOf(err), graph);
        setProblems(located);
        setStatus({ kind: "error", text: `Not saved: ${located.length} problem${located.length === 1 ? "" : "s"} to fix.` });
        const first = located.find((p) => p.nodeId) || located.find((p) => p.edgeId);
        if (first) setSelection(first.nodeId ? { type: "node", id: first.nodeId } : { type: "edge", id: first.edgeId });
      } else {
        setStatus({ kind: "error", text: `Not saved: ${err.message}` });
      }
      return null;
    }
  }, [boot, definition, graph, commitEdit]);
  const publish = useCallback(async () => {
    if (dirty || latest.published) {
      if (!dirty && latest.published) return;
      if (!(await save())) return;
    }
    try {
      const r = await api("POST", `/api/workflows/${boot.workflow.id}/publish`, undefined, boot.csrf);
      setLatest({ number: r.version.number, published: true });
      setVersions((v) => v.map((x) => ({ ...x, published: x.number === r.version.number })));
      setStatus({ kind: "ok", text: `Published version ${r.version.number}: new runs use it.` });
    } catch (err) {
      setStatus({ kind: "error", text: `Not published: ${err.message}` });
    }
  }, [boot, dirty, latest, save]);
  const saveSettings = useCallback(
    async (patch) => {
      try {
        const r = await api("PATCH", `/api/workflows/${boot.workflow.id}`, patch, boot.csrf);
        setWorkflow(r.workflow);
        setStatus({ kind: "ok", text: "Settings saved." });
      } catch (err) {
        setStatus({ kind: "error", text: `Settings not saved: ${err.message}` });
      }
    },
    [boot]
  );

  // --- JSON tab -----------------------------------------------------------------------------------------
  const openTab = (name) => {
    commitEdit();
    if (name === "json") {
      setJsonText(definitionText(definition()));
      setJsonError(null);
    }
    setTab(name);
  };
  const applyJson = () => {
    let parsed;
    try {
      parsed = JSON.parse(jsonText);
    } catch (err) {
      return setJsonError(`Not valid JSON: ${err.message}`);
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) return setJsonError("The definition must be a JSON object.");
    if (parsed.nodes !== undefined && !Array.isArray(parsed.nodes)) return setJsonError("nodes must be a list to be drawn.");
    if (parsed.edges !== undefined && !Array.isArray(parsed.edges)) return setJsonError("edges must be a list to be drawn.");
    setJsonError(null);
    commit(placeMissing(graphFromDefinition(parsed)));
    setProblems([]);
    setStatus({ kind: "info", text: "The JSON is on the canvas." });
  };

  // --- what the canvas draws ------------------------------------------------------------------------
  const flowNodes = useMemo(
    () =>
      graph.nodes.map((n) => {
        const activity = catalogue.byName.get(n.data.node && n.data.node.activity);
        return {
          ...n,
          selected: selection && selection.type === "node" && selection.id === n.id,
          ariaLabel: `${n.data.node.activity} node ${n.id}`,
          data: { ...n.data, category: activity ? activity.category : "other", problems: problems.filter((p) => p.nodeId === n.id) },
        };
      }),
    [graph.nodes, catalogue, problems, selection]
  );
  const flowEdges = useMemo(
    () =>
      graph.edges.map((e) => {
        const bad = problems.some((p) => p.edgeId === e.id);
        const when = e.data.edge && e.data.edge.when;
        return {
          ...e,
          selected: selection && selection.type === "edge" && selection.id === e.id,
          label: when === undefined ? undefined : `when: ${when}`,
          className: bad ? "sx-edge-problem" : when === "false" ? "sx-edge-false" : when === "true" ? "sx-edge-true" : "",
          markerEnd: { type: MarkerType.ArrowClosed },
          ariaLabel: `Edge from ${e.source} to ${e.target}${when === undefined ? "" : ` when ${when}`}`,
        };
      }),
    [graph.edges, problems, selection]
  );
  const scopeFor = useCallback(
    (nodeId) => {
      const inputs = Object.keys(graph.meta.fields.inputs || {}).map((name) => ({ expression: `inputs.${name}` }));
      const upstream = ancestors(graph, nodeId).flatMap((id) => {
        const node = graph.nodes.find((n) => n.id === id);
        const activity = node && catalogue.byName.get(node.data.node.activity);
        const outputs = Object.keys((activity && activity.outputs && activity.outputs.properties) || {});
        const ref = /^[A-Za-z_][A-Za-z0-9_]*$/.test(id) ? `nodes.${id}` : `nodes['${id}']`;
        return outputs.length ? outputs.map((o) => ({ expression: `${ref}.${o}`, hint: activity.outputs.properties[o].description })) : [{ expression: ref }];
      });
      const creds = credentials.flatMap((c) => {
        const ref = /^[A-Za-z_][A-Za-z0-9_]*$/.test(c.name) ? `credentials.${c.name}` : `credentials['${c.name}']`;
        return (c.fieldNames || []).map((f) => ({ expression: /^[A-Za-z_][A-Za-z0-9_]*$/.test(f) ? `${ref}.${f}` : `${ref}['${f}']`, hint: `credential ${c.name} (${c.type})` }));
      });
      return [
        { title: "Inputs", items: inputs },
        { title: "Upstream nodes", items: upstream },
        { title: "Credentials", items: creds },
        { title: "Run", items: [{ expression: "execution.id" }, { expression: "execution.attempt" }, { expression: "vars" }] },
      ];
    },
    [graph, catalogue, credentials]
  );

  const selectedNode = selection && selection.type === "node" ? graph.nodes.find((n) => n.id === selection.id) : null;
  const selectedEdge = selection && selection.type === "edge" ? graph.edges.find((e) => e.id === selection.id) : null;
  const actions = { updateNode, rename, connect, remove, setWhen, commitEdit };
  const publishLabel = dirty ? "Save & publish" : latest.published ? `v${latest.number} is published` : `Publish v${latest.number}`;

  return (
    <div className="sx-studio">
      <div className="sx-toolbar" role="toolbar" aria-label="Designer">
        <span className="sx-version">
          Latest v{latest.number} · {latest.published ? "published" : "draft"}
          {dirty && <strong> · unsaved changes</strong>}
        </span>
        <button type="button" onClick={undo} disabled={!past.length} title="Ctrl+Z">
          Undo
        </button>
        <button type="button" onClick={redo} disabled={!future.length} title="Ctrl+Shift+Z">
          Redo
        </button>
        <button type="button" onClick={layout}>
          Auto-layout
        </button>
        {!readOnly && (
          <>
            <button
              type="button"
              disabled={!selection}
              onClick={() => selection && remove(selection.type === "node" ? [selection.id] : [], selection.type === "edge" ? [selection.id] : [])}
            >
              Delete selected
            </button>
            <button type="button" onClick={save} disabled={!dirty}>
              Save draft
            </button>
            <button type="button" className="sx-primary" onClick={publish} disabled={!dirty && latest.published}>
              {publishLabel}
            </button>
          </>
        )}
        {latest.published && !dirty && (
          <a className="sx-run-link" href={`/workflows/${boot.workflow.id}#run`}>
            Run…
          </a>
        )}
      </div>
      <p className={`sx-status sx-status-${status.kind}`} role="status" aria-live="polite">
        {status.text}
      </p>
      <div className="sx-tabs" role="tablist" aria-label="Views">
        {TABS.map(([key, label]) => (
          <button
            type="button"
            role="tab"
            key={key}
            id={`sx-tab-${key}`}
            aria-selected={tab === key}
            aria-controls={`sx-panel-${key}`}
            className={tab === key ? "active" : ""}
            onClick={() => openTab(key)}
          >
            {label}
          </button>
        ))}
      </div>

      <div id="sx-panel-canvas" role="tabpanel" aria-labelledby="sx-tab-canvas" hidden={tab !== "canvas"} className="sx-panel">
        <div className="sx-layout">
          <Palette catalogue={catalogue} onAdd={(a) => addNode(a)} readOnly={readOnly} />
          <div className="sx-canvas" onDragOver={(event) => event.preventDefault()} onDrop={onDrop}>
            <ReactFlow
              nodes={flowNodes}
              edges={flowEdges}
              nodeTypes={nodeTypes}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={(c) => connect(c.source, c.target)}
              onDelete={onDelete}
              onNodeDragStart={() => {
                dragOrigin.current = graph;
              }}
              onNodeDragStop={() => {
                if (dragOrigin.current) setPast((p) => [...p.slice(-HISTORY_LIMIT + 1), dragOrigin.current]);
                dragOrigin.current = null;
                setFuture([]);
              }}
              nodesDraggable={!readOnly}
              nodesConnectable={!readOnly}
              deleteKeyCode={readOnly ? null : ["Delete", "Backspace"]}
              {...(initialViewport ? { defaultViewport: initialViewport } : { fitView: true, fitViewOptions: { padding: 0.2, maxZoom: 1 } })}
              minZoom={0.2}
              maxZoom={2}
              proOptions={{ hideAttribution: true }}
            >
              <Background />
              <Controls />
              <MiniMap pannable zoomable ariaLabel="Overview of the workflow" />
            </ReactFlow>
          </div>
          <aside className="sx-side">
            {selectedNode ? (
              <NodeInspector
                key={selectedNode.id}
                graph={graph}
                node={selectedNode}
                catalogue={catalogue}
                problems={problems}
                scopeFor={scopeFor}
                readOnly={readOnly}
                actions={actions}
              />
            ) : selectedEdge ? (
              <EdgeInspector key={selectedEdge.id} graph={graph} edge={selectedEdge} problems={problems} readOnly={readOnly} actions={actions} />
            ) : (
              <section className="sx-inspector">
                <h2>Workflow</h2>
                <p className="sx-muted">
                  Pick an activity on the left to add it after the selected node, drag from a node's right handle to
                  another node to connect them, and select a node to edit its parameters.
                </p>
              </section>
            )}
            <section className="sx-problems" aria-label="Problems">
              <h2>Problems {problems.length > 0 && <span className="sx-count">{problems.length}</span>}</h2>
              {problems.length ? (
                <ul>
                  {problems.map((p, i) => (
                    <li key={i}>
                      {p.nodeId || p.edgeId ? (
                        <button
                          type="button"
                          className="sx-linklike"
                          onClick={() => setSelection(p.nodeId ? { type: "node", id: p.nodeId } : { type: "edge", id: p.edgeId })}
                        >
                          {p.message}
                        </button>
                      ) : (
                        p.message
                      )}
                    </li>
                  ))}
                </ul>
              ) : (
                <p className="sx-muted">The hub checks the workflow when you save.</p>
              )}
            </section>
          </aside>
        </div>
      </div>

      <div id="sx-panel-json" role="tabpanel" aria-labelledby="sx-tab-json" hidden={tab !== "json"} className="sx-panel">
        <label htmlFor="sx-json" className="sx-visually-hidden">
          Definition JSON
        </label>
        <textarea
          id="sx-json"
          className="sx-code sx-json"
          spellCheck={false}
          value={jsonText}
          readOnly={readOnly}
          onChange={(event) => setJsonText(event.target.value)}
        />
        {jsonError && (
          <p className="sx-error" role="alert">
            {jsonError}
          </p>
        )}
        {!readOnly && (
          <div className="sx-inline">
            <button type="button" onClick={applyJson}>
              Apply to canvas
            </button>
            <span className="sx-hint">Node positions are kept in the definition's ui object, which the engine ignores.</span>
          </div>
        )}
      </div>

      <div id="sx-panel-settings" role="tabpanel" aria-labelledby="sx-tab-settings" hidden={tab !== "settings"} className="sx-panel">
        <div className="sx-settings-grid">
          <section>
            <h2>Workflow settings</h2>
            <WorkflowSettings key={workflow.updatedAt} workflow={workflow} readOnly={readOnly} onSave={saveSettings} />
          </section>
          <section>
            <h2>Inputs</h2>
            <InputsEditor key={`${past.length}:${future.length}`} inputs={graph.meta.fields.inputs || {}} readOnly={readOnly} onChange={(v) => setMetaField("inputs", Object.keys(v).length || graph.meta.keys.includes("inputs") ? v : undefined)} />
            <h2>Start node</h2>
            <label className="sx-option">
              <span>Start with</span>
              <select
                value={graph.meta.fields.start || ""}
                disabled={readOnly}
                onChange={(event) => setMetaField("start", event.target.value || undefined)}
              >
                <option value="">the node without incoming edge</option>
                {graph.nodes.map((n) => (
                  <option key={n.id} value={n.id}>
                    {n.id}
                  </option>
                ))}
              </select>
            </label>
            <h2>Parallel branches</h2>
            <label className="sx-option">
              <span>Nodes running at once (maxParallel)</span>
              <input
                type="number"
                min="1"
                max="64"
                step="1"
                placeholder="4"
                value={graph.meta.fields.maxParallel ?? ""}
                readOnly={readOnly}
                onChange={(event) => setMetaField("maxParallel", event.target.value === "" ? undefined : Number(event.target.value))}
              />
            </label>
            <p className="sx-hint">Saved with the next draft, like the canvas.</p>
          </section>
        </div>
      </div>

      <div id="sx-panel-compare" role="tabpanel" aria-labelledby="sx-tab-compare" hidden={tab !== "compare"} className="sx-panel">
        {tab === "compare" && <Compare workflowId={boot.workflow.id} versions={versions} nodeTypes={nodeTypes} />}
      </div>
    </div>
  );
}

export function Studio({ boot }) {
  return (
    <ReactFlowProvider>
      <Designer boot={boot} />
    </ReactFlowProvider>
  );
}
