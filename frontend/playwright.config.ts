import { defineConfig } from "@playwright/test";

// The web UI's end-to-end journeys (e2e/), run by tests/tests/web_ui.rs
// against a real berth it starts (BERTH_E2E_BASE_URL and the other
// BERTH_E2E_* settings come from there). Debian's Chromium: Playwright
// cannot download its own browsers on these machines.
export default defineConfig({
  testDir: "e2e",
  outputDir: process.env.BERTH_E2E_OUTPUT_DIR ?? "e2e/test-results",
  // A journey waits for two podman builds and deploys (each may take up to
  // 300 s, as the Rust end-to-end tests allow) on a slow 2-core machine;
  // all of it stays inside nextest's 10 minutes (.config/nextest.toml).
  timeout: 8 * 60_000,
  globalTimeout: 9 * 60_000,
  expect: { timeout: 20_000 },
  // One platform, one browser, two cores: the journeys run one at a time.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  forbidOnly: true,
  reporter: [["list"]],
  use: {
    baseURL: process.env.BERTH_E2E_BASE_URL,
    viewport: { width: 1280, height: 800 },
    actionTimeout: 20_000,
    navigationTimeout: 30_000,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
    launchOptions: {
      executablePath: process.env.BERTH_E2E_CHROMIUM ?? "/usr/bin/chromium",
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    },
  },
  projects: [{ name: "chromium", use: { browserName: "chromium" } }],
});
