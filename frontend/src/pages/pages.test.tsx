// Rendering smoke tests: each page renders without a browser and its form
// fields have labels tied to them (server rendering runs no effects, so
// pages that load data show their loading state).
import { renderToString } from "react-dom/server";
import { MemoryRouter } from "react-router";
import { describe, expect, it } from "vitest";
import { ApiClient } from "../api/client";
import type { Profile } from "../api/types";
import { GitHubSection } from "../components/GitHubSection";
import { SessionProvider } from "../api/session";
import { Apps } from "./Apps";
import { CreateApp } from "./CreateApp";
import { ForgotPassword } from "./ForgotPassword";
import { Register } from "./Register";
import { SignIn } from "./SignIn";

function render(page: React.ReactNode, url = "/"): string {
  const client = new ApiClient({ fetch: () => new Promise(() => {}) });
  // React marks text boundaries with <!-- -->; they are not part of the text.
  return renderToString(
    <SessionProvider client={client}>
      <MemoryRouter initialEntries={[url]}>{page}</MemoryRouter>
    </SessionProvider>,
  ).replace(/<!-- -->/g, "");
}

/** Every <input>/<select> id has a <label for> naming it. */
function labelled(html: string): { label: string; id: string }[] {
  const ids = [...html.matchAll(/<(?:input|select)[^>]*\sid="([^"]+)"/g)].map((m) => m[1]);
  const labels = new Map([...html.matchAll(/<label for="([^"]+)">([^<]*)/g)].map((m) => [m[1], m[2]]));
  return ids.map((id) => ({ id, label: labels.get(id) ?? "" }));
}

describe("pages render with labelled fields", () => {
  it("sign in, with the GitHub error from the address", () => {
    const html = render(<SignIn />, "/sign-in?error=the%20state%20expired");
    expect(labelled(html).map((f) => f.label)).toEqual(["Username or email", "Password"]);
    expect(html).toContain("Sign in with GitHub");
    expect(html).toContain("GitHub sign-in did not work: the state expired");
  });

  it("register", () => {
    expect(labelled(render(<Register />)).map((f) => f.label)).toEqual([
      "Username",
      "Email",
      "Password",
      "Repeat password",
    ]);
  });

  it("forgot password", () => {
    expect(labelled(render(<ForgotPassword />)).map((f) => f.label)).toEqual(["Email"]);
  });

  it("create app (Git URL until GitHub is known to be linked)", () => {
    const labels = labelled(render(<CreateApp />)).map((f) => f.label);
    expect(labels).toEqual(["Git URL", "Branch", "Name", "Subdirectory", "Port", "Name 1", "Value 1"]);
  });

  it("linking GitHub asks for the password, and says what came back", () => {
    const profile: Profile = {
      id: "u1",
      username: "alice",
      email: "alice@example.com",
      display_name: null,
      has_password: true,
      github_login: null,
      pending_email: null,
      created_at: "2026-12-05T00:00:00Z",
    };
    const html = render(<GitHubSection profile={profile} onChanged={() => {}} />, "/account?github_error=no%20cookie");
    expect(labelled(html).map((f) => f.label)).toEqual(["Current password"]);
    expect(html).toContain("Linking GitHub did not work: no cookie");
    const githubOnly = { ...profile, has_password: false };
    expect(labelled(render(<GitHubSection profile={githubOnly} onChanged={() => {}} />))).toEqual([]);
  });

  it("apps list starts in its loading state", () => {
    expect(render(<Apps />)).toContain("Loading your apps…");
  });
});
