// Builds Studio once into the hub's static folder: `make studio` (the assets are committed; `make up` needs no Node.js).
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  define: { "process.env.NODE_ENV": JSON.stringify("production") },
  build: {
    outDir: "../src/exekra/hub/dashboard/static/studio",
    emptyOutDir: true,
    sourcemap: false,
    cssCodeSplit: false,
    lib: {
      entry: "src/main.jsx",
      name: "ExekraStudioBundle",
      formats: ["iife"],
      fileName: () => "studio.js",
      cssFileName: "studio",
    },
  },
});
