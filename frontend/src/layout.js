// Automatic layout, left to right, with dagre: branches sit one above the other.
import dagre from "@dagrejs/dagre";
import { NODE_HEIGHT, NODE_WIDTH } from "./model.js";

/** The graph with every node placed by dagre (left to right). */
export function autoLayout(graph) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 40, ranksep: 80, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of graph.nodes) g.setNode(n.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const e of graph.edges) if (g.hasNode(e.source) && g.hasNode(e.target)) g.setEdge(e.source, e.target);
  dagre.layout(g);
  const nodes = graph.nodes.map((n) => {
    const placed = g.node(n.id);
    return { ...n, position: { x: placed.x - NODE_WIDTH / 2, y: placed.y - NODE_HEIGHT / 2 } };
  });
  return { ...graph, nodes };
}

/** Lay out only when some node has no stored position. */
export function placeMissing(graph) {
  return graph.nodes.some((n) => !n.position) ? autoLayout(graph) : graph;
}
