// Journey 1: a new user registers (confirming by mail), creates an app from
// a Git URL with an env var, watches it build and go live without reloading,
// opens it, reads its logs as they arrive, changes the env var, redeploys
// and sees the new value served. Everything is the real berth.

import { expect, test, type Locator, type Page } from "@playwright/test";
import { get as httpGet } from "node:http";
import { IN_PROGRESS, required, SETTLE_MS, SETTLED } from "./env";
import { askHarness } from "./harness";
import { confirmationLink, waitForMail } from "./mailbox";
import { snap } from "./screens";

const baseUrl = required("BERTH_E2E_BASE_URL");
const repoUrl = required("BERTH_E2E_REPO_URL");
const mailDir = required("BERTH_E2E_MAIL_DIR");

/**
 * GETs an app's URL from the test itself and returns the status. Browsers
 * send names under `localhost` to this machine; Node asks the system
 * resolver, which does not know them, so such a request goes to 127.0.0.1
 * with the name as its Host, which is what the edge router routes by.
 */
function appGet(url: URL): Promise<number> {
  const local = url.hostname.endsWith(".localhost");
  return new Promise((resolve, reject) => {
    const request = httpGet(
      {
        host: local ? "127.0.0.1" : url.hostname,
        port: url.port || 80,
        path: url.pathname + url.search,
        headers: { host: url.host },
      },
      (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode ?? 0));
      },
    );
    request.on("error", reject);
  });
}

/** Waits until the deployment in `row` settles, and insists on `live`. */
async function expectLive(row: Locator): Promise<void> {
  const badge = row.locator(".badge");
  await expect(badge).toHaveAttribute("data-state", SETTLED, { timeout: SETTLE_MS });
  const state = await badge.getAttribute("data-state");
  expect(state, `the deployment settled as ${state}: ${await row.innerText()}`).toBe("live");
}

/** Opens the app's URL from its page (a new tab, as the link says) and returns what it answered. */
async function openApp(page: Page): Promise<string> {
  const link = page.locator("dl.facts a");
  await expect(link).toHaveAttribute("href", /^https?:\/\/[^/]+/);
  const [tab] = await Promise.all([page.context().waitForEvent("page"), link.click()]);
  await tab.waitForLoadState();
  const body = (await tab.locator("body").innerText()).trim();
  await tab.close();
  return body;
}

/** Shows only log rows with `text` and returns them. */
async function logRows(page: Page, text: string): Promise<Locator> {
  await page.getByLabel("Filter", { exact: true }).fill(text);
  return page.getByRole("log", { name: "App log" }).locator(".log-row", { hasText: text });
}

test("register, deploy from Git, watch it go live, change an env var and redeploy", async ({ page }) => {
  // The backend's Content-Security-Policy must not block anything the UI does.
  const blocked: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) blocked.push(message.text());
  });
  const username = `ada-${Date.now().toString(36)}`;
  // Unique: the Maildir is shared by every run on this machine.
  const email = `${username}@example.com`;
  const password = "correct horse battery staple";

  await test.step("sign-in page", async () => {
    const answer = await page.goto("/sign-in");
    const policy = answer?.headers()["content-security-policy"] ?? "";
    expect(policy).toContain("frame-ancestors 'none'");
    expect(policy).toContain("script-src 'self'");
    await expect(page.getByRole("heading", { name: "Sign in", exact: true })).toBeVisible();
    await snap(page, "sign-in");
  });

  await test.step("register, then confirm with the link the mail brings", async () => {
    await page.getByRole("link", { name: "Create an account" }).click();
    await expect(page.getByRole("heading", { name: "Create an account", exact: true })).toBeVisible();
    await page.getByLabel("Username", { exact: true }).fill(username);
    await page.getByLabel("Email", { exact: true }).fill(email);
    await page.getByLabel("Password", { exact: true }).fill(password);
    await page.getByLabel("Repeat password", { exact: true }).fill(password);
    await snap(page, "register");
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page.getByRole("heading", { name: "Check your inbox", exact: true })).toBeVisible();
    await expect(page.getByText(`We sent a link to ${email}`)).toBeVisible();
    await snap(page, "register-check-inbox");

    const link = confirmationLink(await waitForMail(mailDir, email));
    expect(link.startsWith(`${baseUrl}/confirm-registration#token=`), link).toBe(true);
    await page.goto(link);
    // Finishing a sign-up takes the password chosen for it, too.
    await expect(page.getByRole("heading", { name: "Confirm your account", exact: true })).toBeVisible();
    await page.getByLabel("Password", { exact: true }).fill(password);
    await snap(page, "confirm-registration");
    await page.getByRole("button", { name: "Create account" }).click();
    await expect(page).toHaveURL(`${baseUrl}/`);
    await expect(page.getByRole("heading", { name: "Apps", exact: true })).toBeVisible();
    await expect(page.getByRole("heading", { name: "No apps yet", exact: true })).toBeVisible();
    await snap(page, "apps-empty");
  });

  await test.step("create an app from the Git URL, with an env var, and deploy it", async () => {
    await page.getByRole("link", { name: "New app", exact: true }).click();
    await expect(page.getByRole("heading", { name: "New app", exact: true })).toBeVisible();
    await page.getByLabel("Git URL", { exact: true }).fill(repoUrl);
    await page.getByLabel("Branch", { exact: true }).fill("main");
    await page.getByLabel("Name", { exact: true }).fill("greeter");
    await page.getByLabel("Port", { exact: true }).fill("8000");
    await page.getByLabel("Name 1", { exact: true }).fill("GREETING");
    await page.getByLabel("Value 1", { exact: true }).fill("hello from the browser");
    await expect(page.getByLabel("Deploy it now", { exact: true })).toBeChecked();
    await snap(page, "create-app");
    await page.getByRole("button", { name: "Create app" }).click();
    await expect(page).toHaveURL(/\/apps\/[0-9a-f-]{36}$/);
    await expect(page.getByRole("heading", { name: "greeter", exact: true })).toBeVisible();
  });

  // Set on this document: still there at the end means nothing reloaded it.
  await page.evaluate(() => Object.assign(window, { sameDocument: true }));
  const deployments = page.locator("ol.deployments > li");
  const log = page.getByRole("log", { name: "App log" });

  await test.step("build lines arrive while it builds, then it goes live on screen", async () => {
    await expect(deployments).toHaveCount(1);
    await expect(log.locator(".log-row .src-build").first()).toBeVisible({ timeout: SETTLE_MS });
    // Read once, not retried: the line came while the deployment still moved.
    const state = await deployments.first().locator(".badge").getAttribute("data-state");
    expect(state, "the first build line showed up only after the deployment settled").toMatch(IN_PROGRESS);
    await expect(page.getByRole("status").filter({ hasText: /^Live ·/ })).toBeVisible();
    await expectLive(deployments.first());
    await expect(page.locator(".page-head .badge")).toHaveAttribute("data-state", "live");
  });

  await test.step("the app answers at its URL, and its log shows it live", async () => {
    expect(await openApp(page)).toBe("hello from the browser v1");
    await expect(await logRows(page, "Detected Python")).not.toHaveCount(0);
    await expect((await logRows(page, "Detected Python")).first().locator(".src-build")).toBeVisible();
    await expect((await logRows(page, "listening on 8000 with v1")).first()).toBeVisible({ timeout: 60_000 });
    // Printed by the app when the tab above asked for its page.
    const served = (await logRows(page, "served / with v1")).first();
    await expect(served).toBeVisible({ timeout: 60_000 });
    await expect(served.locator(".src-app")).toBeVisible();
    await page.getByLabel("Filter", { exact: true }).fill("");
    await snap(page, "app-live");
  });

  await test.step("the log view rides out a backend restart: no line lost, none twice", async () => {
    const appUrl = await page.locator("dl.facts a").getAttribute("href");
    // Each request is one line in the app's log, named by its path.
    const hit = async (phase: string) => {
      for (let i = 1; i <= 3; i++) {
        const status = await appGet(new URL(`/e2e-${phase}-${i}`, appUrl!));
        expect(status, `the app answered ${status}`).toBe(200);
      }
    };
    const marked = await logRows(page, "served /e2e-");
    const status = page.locator(".log-status");
    await hit("before");
    await expect(marked).toHaveCount(3, { timeout: 60_000 });
    await askHarness("stop-backend");
    await expect(status).toContainText("Connection lost", { timeout: 30_000 });
    // The app goes on logging while the backend is down.
    await hit("during");
    await askHarness("start-backend");
    await hit("after");
    await expect(status).toContainText("Live", { timeout: 60_000 });
    const expected = ["before", "during", "after"].flatMap((phase) =>
      [1, 2, 3].map((i) => `served /e2e-${phase}-${i} with v1`),
    );
    await expect(marked).toHaveCount(expected.length, { timeout: 60_000 });
    const shown = await marked.evaluateAll((rows) => rows.map((row) => row.textContent ?? ""));
    expect(shown.map((text) => text.match(/served \/e2e-\S+ with v1/)?.[0])).toEqual(expected);
    await page.getByLabel("Filter", { exact: true }).fill("");
  });

  await test.step("change the env var and redeploy: the new value is served", async () => {
    await page.getByRole("button", { name: "Show values" }).click();
    const value = page.getByLabel("Value 1", { exact: true });
    await expect(value).toHaveValue("hello from the browser");
    await value.fill("bonjour from the browser");
    await page.getByRole("button", { name: "Save and deploy" }).click();
    await expect(page.getByText("Saved. A deployment with the new values has started.")).toBeVisible();
    await expect(deployments).toHaveCount(2);
    await expectLive(deployments.first());
    await expect(deployments.nth(1).locator(".badge")).toHaveAttribute("data-state", "superseded");
    expect(await openApp(page)).toBe("bonjour from the browser v1");
    expect(await page.evaluate(() => "sameDocument" in window), "the app page was reloaded").toBe(true);
    await snap(page, "app-redeployed");
  });

  await test.step("resources: each instance's memory, within the per-app maximum and the quota", async () => {
    const memory = page.getByLabel("Memory (MB)", { exact: true });
    await expect(memory).toHaveValue("512");
    await expect(page.locator("dl.facts", { hasText: "Memory" }).getByText("512 MB of 10 GB")).toBeVisible();
    await memory.fill("100000");
    await page.getByRole("button", { name: "Save resources" }).click();
    await expect(page.getByText("must be between 64 and 4096 MB")).toBeVisible();
    await memory.fill("256");
    await page.getByRole("button", { name: "Save resources" }).click();
    await expect(page.getByText("Saved. It applies from the next deployment.")).toBeVisible();
    await expect(page.getByText("256 MB of memory, 1 core")).toBeVisible();
    await expect(page.locator("dl.facts", { hasText: "Memory" }).getByText("256 MB of 10 GB")).toBeVisible();
  });

  await test.step("a custom domain: the DNS records to create, then removed", async () => {
    const domain = page.getByLabel("Domain", { exact: true });
    await domain.fill("https://shop.example.test/");
    await page.getByRole("button", { name: "Add the domain" }).click();
    await expect(page.getByText("Enter the domain alone, without https://, a port or a path.")).toBeVisible();
    await domain.fill("shop.example.test");
    await page.getByRole("button", { name: "Add the domain" }).click();
    const item = page.locator("li.domain", { hasText: "shop.example.test" });
    await expect(item.locator(".badge")).toHaveText("waiting for DNS");
    await expect(item.getByRole("cell", { name: "_berth-challenge.shop.example.test" })).toBeVisible();
    await expect(item.getByRole("cell", { name: /^berth-verification=/ })).toBeVisible();
    await snap(page, "app-domain-pending");
    await item.getByRole("button", { name: "Remove" }).click();
    await expect(page.getByText("No custom domain yet")).toBeVisible();
  });

  await test.step("the apps list, the account and the audit log", async () => {
    await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Apps" }).click();
    const row = page.locator(".app-row", { hasText: "greeter" });
    await expect(row.locator(".badge")).toHaveAttribute("data-state", "live");
    await snap(page, "apps");
    await page.getByRole("link", { name: "Account" }).click();
    await expect(page.getByRole("heading", { name: "Your account", exact: true })).toBeVisible();
    await expect(page.getByLabel("Email", { exact: true })).toHaveValue(email);
    await expect(page.getByText("This browser:", { exact: true })).toBeVisible();
    await snap(page, "account");
    await page.getByRole("link", { name: "Audit" }).click();
    await expect(page.getByRole("heading", { name: "Audit log", exact: true })).toBeVisible();
    await expect(page.getByText("Created an app").first()).toBeVisible();
    await expect(page.getByText("Started a deployment").first()).toBeVisible();
    await snap(page, "audit");
  });

  expect(blocked, "the Content-Security-Policy blocked something").toEqual([]);
});
