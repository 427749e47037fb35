// Entry point: mounts Studio on #studio, or an execution's live graph on #run-graph, with the page's data; and
// exposes the model for tests.
import "@xyflow/react/dist/style.css";
import "./studio.css";
import { createRoot } from "react-dom/client";
import * as model from "./model.js";
import { autoLayout } from "./layout.js";
import { RunGraph } from "./run.jsx";
import { Studio } from "./Studio.jsx";

window.ExekraStudio = { model, autoLayout };

function mountOn(rootId, dataId, render) {
  const root = document.getElementById(rootId);
  const data = document.getElementById(dataId);
  if (root && data) createRoot(root).render(render(JSON.parse(data.textContent)));
}

function mount() {
  mountOn("studio", "studio-data", (boot) => <Studio boot={boot} />);
  mountOn("run-graph", "run-graph-data", (boot) => <RunGraph boot={boot} />);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
else mount();
