/// <reference types="vitest/config" />
import { configDefaults } from "vitest/config";
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The backend serves the built files (BERTH_FRONTEND_DIR=frontend/dist) and the
// API on the same origin. In `npm run dev` Vite forwards /api to the backend, so
// the refresh cookie (Path=/api/v1/auth, SameSite=Strict) works the same way.
const backend = process.env.BERTH_BACKEND_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/api": {
        target: backend,
        changeOrigin: false,
        ws: true,
        configure(proxy) {
          // The log socket checks Origin against the backend's public URL.
          // A page served by this dev server is sent on as if from the
          // backend's own origin; any other Origin passes unchanged (and is
          // refused as before).
          proxy.on("proxyReqWs", (proxyReq, req) => {
            const { origin, host } = req.headers;
            if (origin && host && URL.canParse(origin) && new URL(origin).host === host) {
              proxyReq.setHeader("origin", new URL(backend).origin);
            }
          });
          // Send server-sent events' headers at once instead of with the
          // first event, so EventSource opens without waiting.
          proxy.on("proxyRes", (proxyRes, _req, res) => {
            if (String(proxyRes.headers["content-type"] ?? "").startsWith("text/event-stream")) {
              setImmediate(() => res.flushHeaders());
            }
          });
        },
      },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts", "src/**/*.test.tsx"],
    // e2e/ holds Playwright's journeys, run by tests/tests/web_ui.rs.
    exclude: [...configDefaults.exclude, "e2e/**"],
  },
});
