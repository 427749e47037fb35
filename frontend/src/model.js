// The designer's model: a workflow definition <-> the canvas graph (nodes and edges), with no loss.
//
// Pure functions, no browser or React: the same module runs in the page and in the round-trip tests.
// A canvas node keeps its definition node object as is (`data.node`), a canvas edge its edge object
// (`data.edge`), and the graph keeps every other top-level field in its original order (`meta`), so that
// definitionFromGraph(graphFromDefinition(d)) equals d apart from `ui`, which carries the positions.

export const NODE_WIDTH = 220;
export const NODE_HEIGHT = 68;
export const IF_ACTIVITY = "control.if";

const isObject = (value) => value !== null && typeof value === "object" && !Array.isArray(value);
const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

let edgeCounter = 0;
export function newEdgeId() {
  edgeCounter += 1;
  return `e${Date.now().toString(36)}-${edgeCounter}`;
}

/** Canvas node of a definition node at `position`. */
export function canvasNode(node, position) {
  const placed = position && Number.isFinite(position.x) && Number.isFinite(position.y);
  return { id: String(node.id), type: "activity", position: placed ? { x: position.x, y: position.y } : null, data: { node } };
}

/** Canvas edge of a definition edge. */
export function canvasEdge(edge, id = newEdgeId()) {
  const ends = isObject(edge) ? edge : {};
  return { id, source: String(ends.from), target: String(ends.to), data: { edge } };
}

/**
 * The canvas graph of a definition: `{nodes, edges, meta, ui}`. Nodes without a stored position get
 * `null` (the designer lays them out). `meta` holds the definition without nodes, edges and ui, in order.
 */
export function graphFromDefinition(definition) {
  const def = clone(definition) || {};
  const ui = def.ui && typeof def.ui === "object" && !Array.isArray(def.ui) ? def.ui : {};
  const positions = ui.positions && typeof ui.positions === "object" ? ui.positions : {};
  const used = new Set();
  const nodes = (Array.isArray(def.nodes) ? def.nodes : []).map((node, index) => {
    // An invalid or repeated id still gets a node of its own on the canvas (the hub reports the problem).
    const given = node && typeof node === "object" ? node.id : undefined;
    const id = typeof given === "string" && given && !used.has(given) ? given : `__node${index + 1}`;
    used.add(id);
    return { ...canvasNode(node, positions[id] || null), id };
  });
  const edges = (Array.isArray(def.edges) ? def.edges : []).map((edge, index) => canvasEdge(edge, `e${index + 1}`));
  const meta = { keys: Object.keys(def), fields: {} };
  for (const key of meta.keys) {
    if (key !== "nodes" && key !== "edges" && key !== "ui") meta.fields[key] = def[key];
  }
  meta.hadEdges = Object.prototype.hasOwnProperty.call(def, "edges");
  return { nodes, edges, meta, ui };
}

/**
 * The definition a canvas graph stands for. Node and edge order is the canvas order; an edge's
 * `from`/`to` follow its canvas ends. `ui.positions` records where each node is; `viewport` (x, y, zoom)
 * is added when given.
 */
export function definitionFromGraph(graph, viewport) {
  const nodes = graph.nodes.map((n) => (isObject(n.data.node) ? { ...n.data.node } : n.data.node));
  const edges = graph.edges.map((e) => {
    if (!isObject(e.data.edge)) return e.data.edge;
    const edge = { ...e.data.edge };
    // Written back only when the canvas moved an end, so that an edge the canvas cannot draw stays as is.
    if (e.source !== String(edge.from)) edge.from = e.source;
    if (e.target !== String(edge.to)) edge.to = e.target;
    return edge;
  });
  const positions = {};
  for (const n of graph.nodes) {
    if (n.position) positions[n.id] = { x: Math.round(n.position.x), y: Math.round(n.position.y) };
  }
  const ui = { ...(graph.ui || {}), positions };
  if (viewport) ui.viewport = { x: Math.round(viewport.x), y: Math.round(viewport.y), zoom: viewport.zoom };
  const out = {};
  const keys = graph.meta.keys.slice();
  for (const key of ["nodes", "edges", "ui"]) if (!keys.includes(key)) keys.push(key);
  for (const key of keys) {
    if (key === "nodes") out.nodes = nodes;
    else if (key === "edges") {
      if (edges.length || graph.meta.hadEdges) out.edges = edges;
    } else if (key === "ui") out.ui = ui;
    else if (Object.prototype.hasOwnProperty.call(graph.meta.fields, key)) out[key] = graph.meta.fields[key];
  }
  return out;
}

/** `definition` without its `ui` object. */
export function withoutUi(definition) {
  const copy = { ...definition };
  delete copy.ui;
  return copy;
}

/** Definition in, definition out (through the canvas graph), for the round-trip tests. */
export function roundTrip(definition) {
  return definitionFromGraph(graphFromDefinition(definition));
}

/** Whether a definition value is an expression template. */
export const isTemplate = (value) => typeof value === "string" && value.includes("{{");

/** Ids of the nodes upstream of `nodeId` (its ancestors), nearest first. */
export function ancestors(graph, nodeId) {
  const incoming = new Map();
  for (const e of graph.edges) {
    if (!incoming.has(e.target)) incoming.set(e.target, []);
    incoming.get(e.target).push(e.source);
  }
  const seen = new Set();
  const order = [];
  const queue = [...(incoming.get(nodeId) || [])];
  while (queue.length) {
    const id = queue.shift();
    if (seen.has(id) || id === nodeId) continue;
    seen.add(id);
    order.push(id);
    queue.push(...(incoming.get(id) || []));
  }
  return order;
}

/** The `when` a new edge from `source` gets: "true", then "false" after a control.if; none otherwise. */
export function whenForNewEdge(graph, sourceId) {
  const source = graph.nodes.find((n) => n.id === sourceId);
  if (!source || source.data.node.activity !== IF_ACTIVITY) return undefined;
  const used = new Set(graph.edges.filter((e) => e.source === sourceId).map((e) => e.data.edge.when));
  if (!used.has("true")) return "true";
  if (!used.has("false")) return "false";
  return "true";
}

/** A node id not taken yet, from the activity's last name part (`http.request` -> `request`, `request_2`). */
export function freshNodeId(graph, activity) {
  const base = (activity.split(".").pop() || "node").replace(/[^A-Za-z0-9_-]/g, "_").replace(/^[^A-Za-z_]/, "_");
  const taken = new Set(graph.nodes.map((n) => n.id));
  if (!taken.has(base)) return base;
  for (let i = 2; ; i += 1) if (!taken.has(`${base}_${i}`)) return `${base}_${i}`;
}

/** Rename a node: its edges and its position follow. Returns a new graph. */
export function renameNode(graph, oldId, newId) {
  const nodes = graph.nodes.map((n) =>
    n.id === oldId ? { ...n, id: newId, data: { ...n.data, node: { ...n.data.node, id: newId } } } : n
  );
  const edges = graph.edges.map((e) => ({
    ...e,
    source: e.source === oldId ? newId : e.source,
    target: e.target === oldId ? newId : e.target,
  }));
  const meta = { ...graph.meta, fields: { ...graph.meta.fields } };
  if (meta.fields.start === oldId) meta.fields.start = newId;
  return { ...graph, nodes, edges, meta };
}

const stable = (value) => JSON.stringify(value, (key, v) =>
  v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v
);

/**
 * What changed from definition `a` to `b`: node ids added, removed and changed (any field), and edges
 * added and removed (as "from->to[when]" keys).
 */
export function diffDefinitions(a, b) {
  const byId = (def) => new Map((def.nodes || []).map((n) => [n.id, n]));
  const before = byId(a);
  const after = byId(b);
  const added = [...after.keys()].filter((id) => !before.has(id));
  const removed = [...before.keys()].filter((id) => !after.has(id));
  const changed = [...after.keys()].filter((id) => before.has(id) && stable(before.get(id)) !== stable(after.get(id)));
  const edgeKey = (e) => `${e.from}->${e.to}${e.when !== undefined ? `[${e.when}]` : ""}`;
  const edgesA = new Set((a.edges || []).map(edgeKey));
  const edgesB = new Set((b.edges || []).map(edgeKey));
  return {
    added,
    removed,
    changed,
    edgesAdded: [...edgesB].filter((k) => !edgesA.has(k)),
    edgesRemoved: [...edgesA].filter((k) => !edgesB.has(k)),
  };
}

/** The JSON text the JSON tab shows for a definition. */
export const definitionText = (definition) => JSON.stringify(definition, null, 2);
