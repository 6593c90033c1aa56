// Journey 2: sign in with GitHub. GitHub is the harness's fake
// (tests/src/fake_github.rs), which approves at once and sends the browser
// back to berth's callback; berth is real. The harness then checks the calls
// the fake received.

import { expect, test } from "@playwright/test";
import { required } from "./env";
import { snap } from "./screens";

const baseUrl = required("BERTH_E2E_BASE_URL");
const login = required("BERTH_E2E_GITHUB_LOGIN");
const repos = required("BERTH_E2E_GITHUB_REPOS").split(",");
const branches = required("BERTH_E2E_GITHUB_BRANCHES").split(",");

test("sign in with GitHub and pick a repository for a new app", async ({ page }) => {
  await test.step("sign in with GitHub, and land signed in", async () => {
    await page.goto("/sign-in");
    await page.getByRole("button", { name: "Sign in with GitHub" }).click();
    await expect(page).toHaveURL(`${baseUrl}/`);
    await expect(page.getByRole("heading", { name: "Apps", exact: true })).toBeVisible();
    await expect(page.getByRole("navigation", { name: "Main" }).getByRole("button", { name: "Sign out" })).toBeVisible();
  });

  await test.step("New app offers the GitHub repositories and a chosen one's branches", async () => {
    await page.getByRole("link", { name: "New app", exact: true }).click();
    await expect(page.getByRole("heading", { name: "New app", exact: true })).toBeVisible();
    await expect(page.getByLabel(`A GitHub repository (${login})`)).toBeChecked();
    const repository = page.getByLabel("Repository", { exact: true });
    for (const fullName of repos) {
      await expect(repository.locator("option", { hasText: fullName })).toHaveCount(1);
    }
    await repository.selectOption(repos[0]);
    const branch = page.getByLabel("Branch", { exact: true });
    await expect(branch.locator("option")).toHaveText(branches);
    await expect(branch).toHaveValue("main");
    // The name comes from the repository's.
    await expect(page.getByLabel("Name", { exact: true })).toHaveValue(repos[0].split("/")[1]);
    await snap(page, "create-app-github");
  });

  await test.step("the account shows GitHub linked", async () => {
    await page.getByRole("link", { name: "Account" }).click();
    await expect(page.getByText(`Linked to ${login}`)).toBeVisible();
    await snap(page, "account-github");
  });
});
