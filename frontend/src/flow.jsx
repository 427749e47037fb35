// A graph drawn read only (nodes cannot be moved or connected): compared versions, an execution's live graph.
import { Background, Controls, ReactFlow, ReactFlowProvider } from "@xyflow/react";

export function ReadOnlyFlow({ nodes, edges, nodeTypes, ...options }) {
  return (
    <ReactFlowProvider>
      <ReactFlow
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        nodesDraggable={false}
        nodesConnectable={false}
        fitView
        proOptions={{ hideAttribution: true }}
        {...options}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </ReactFlowProvider>
  );
}
