// Writes the licences of every package bundled into Studio next to the bundle (studio.LICENSES.txt).
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const bundled = ["react", "react-dom", "scheduler", "@xyflow/react", "@xyflow/system", "@dagrejs/dagre", "@dagrejs/graphlib",
  "zustand", "use-sync-external-store", "classcat", "d3-drag", "d3-selection", "d3-zoom", "d3-dispatch", "d3-interpolate",
  "d3-color", "d3-ease", "d3-timer", "d3-transition"];
const parts = ["Exekra Studio bundles these packages (built from frontend/ by `make studio`):\n"];
for (const name of bundled) {
  let dir;
  try {
    dir = join("node_modules", name);
    readdirSync(dir);
  } catch {
    continue;
  }
  const meta = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  const text = file ? readFileSync(join(dir, file), "utf8").trim() : `License: ${meta.license}`;
  parts.push(`${"=".repeat(78)}\n${name} ${meta.version} (${meta.license})\n${"=".repeat(78)}\n${text}\n`);
}
writeFileSync("../src/exekra/hub/dashboard/static/studio/studio.LICENSES.txt", parts.join("\n"));
