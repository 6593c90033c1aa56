/// <reference types="vitest/config" />
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
      "/api": { target: backend, changeOrigin: false, ws: true },
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: true,
  },
  test: {
    environment: "node",
    include: ["src/**/*.test.ts"],
  },
});
