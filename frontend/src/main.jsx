// Entry point: mounts Studio on #studio with the page's data, and exposes the model for tests.
import "@xyflow/react/dist/style.css";
import "./studio.css";
import { createRoot } from "react-dom/client";
import * as model from "./model.js";
import { autoLayout } from "./layout.js";
import { Studio } from "./Studio.jsx";

window.ExekraStudio = { model, autoLayout };

function mount() {
  const root = document.getElementById("studio");
  const data = document.getElementById("studio-data");
  if (!root || !data) return;
  createRoot(root).render(<Studio boot={JSON.parse(data.textContent)} />);
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
else mount();
