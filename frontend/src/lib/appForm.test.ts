import { describe, expect, it } from "vitest";
import {
  buildCreateApp,
  buildEnv,
  buildUpdateApp,
  canRollBackTo,
  envRows,
  parsePort,
  parseReplicas,
  sameEnv,
  suggestName,
  type AppFormValues,
} from "./appForm";
import { gitRef, repoUrl } from "./validation";

const base: AppFormValues = {
  name: "hello",
  repoUrl: "https://github.com/octocat/hello.git",
  branch: "",
  subdirectory: "",
  port: "",
  env: [],
};

describe("buildCreateApp", () => {
  it("fills the defaults the backend would use", () => {
    expect(buildCreateApp(base)).toEqual({
      errors: {},
      body: {
        name: "hello",
        repo_url: "https://github.com/octocat/hello.git",
        branch: "main",
        subdirectory: null,
        port: 8000,
        env: {},
      },
    });
  });

  it("sends env vars, skips empty rows, tidies the subdirectory", () => {
    const { body, errors } = buildCreateApp({
      ...base,
      subdirectory: "./web/",
      port: "3000",
      env: [
        { id: 1, name: " GREETING ", value: "hi" },
        { id: 2, name: "", value: "" },
        { id: 3, name: "EMPTY", value: "" },
      ],
    });
    expect(errors).toEqual({});
    expect(body).toMatchObject({ subdirectory: "web", port: 3000, env: { GREETING: "hi", EMPTY: "" } });
  });

  it("reports each bad field, env rows by name or by row", () => {
    const { body, errors } = buildCreateApp({
      name: "1app",
      repoUrl: "git@github.com:o/r.git",
      branch: "bad..branch",
      subdirectory: "../up",
      port: "99999",
      env: [
        { id: 1, name: "PORT", value: "1" },
        { id: 2, name: "1BAD", value: "x" },
        { id: 3, name: "", value: "orphan" },
        { id: 4, name: "A", value: "1" },
        { id: 5, name: "A", value: "2" },
      ],
    });
    expect(body).toBeNull();
    expect(errors).toEqual({
      name: "must start with a lowercase letter",
      repo_url: "must be an https:// URL of a Git repository",
      branch: "must be a valid branch or tag name",
      subdirectory: "must be a relative folder inside the repository",
      port: "must be between 1 and 65535",
      "env.PORT": "PORT is set by berth from the app's port",
      "env.1BAD": "names must match [A-Za-z_][A-Za-z0-9_]*",
      "env#3": "needs a name",
      "env.A": "is given twice",
    });
  });
});

describe("parsePort", () => {
  it("reads whole numbers in range", () => {
    expect(parsePort("")).toEqual({ port: 8000 });
    expect(parsePort(" 8080 ")).toEqual({ port: 8080 });
    expect(parsePort("0")).toEqual({ error: "must be between 1 and 65535" });
    expect(parsePort("80.5")).toEqual({ error: "must be a whole number between 1 and 65535" });
  });
});

describe("repoUrl", () => {
  it("follows the backend's rules", () => {
    expect(repoUrl("https://github.com/o/r.git", false)).toBeNull();
    expect(repoUrl("http://127.0.0.1:3000/o/r.git", true)).toBeNull();
    expect(repoUrl("http://localhost/r", false)).toMatch(/^plain http:\/\/ is allowed only for local development/);
    expect(repoUrl("http://example.com/r", false)).toMatch(/use an https:\/\/ URL$/);
    expect(repoUrl("ssh://git@example.com/r", false)).toBe("must use https:// (ssh:// is not supported)");
    expect(repoUrl("https://user:pw@example.com/r", false)).toBe("must not contain credentials");
    expect(repoUrl("/srv/repo", false)).toMatch(/local repositories are not allowed/);
    expect(repoUrl("/srv/repo", true)).toBeNull();
    expect(repoUrl("", false)).toBe("is required");
  });
});

describe("gitRef", () => {
  it("accepts usual branch names and refuses what Git refuses", () => {
    for (const ok of ["main", "feature/x", "v1.2.3", "release-2026"]) expect(gitRef(ok), ok).toBeNull();
    for (const bad of ["", "-x", "/x", "x/", "x.", "x.lock", "a..b", "a//b", "a@{b", "a b", "a~b", "a^b", "a:b", "a?b", "a*b", "a[b", "a\\b"]) {
      expect(gitRef(bad), bad).toBe("must be a valid branch or tag name");
    }
  });
});

describe("suggestName", () => {
  it("makes a valid app name from a repository's", () => {
    expect(suggestName("octocat/Hello_World")).toBe("hello-world");
    expect(suggestName("me/2048-game.git")).toBe("game");
    expect(suggestName("me/--x--")).toBe("x");
    expect(suggestName("me/123")).toBe("");
  });
});

describe("env rows", () => {
  it("round-trip the API's map, sorted by name", () => {
    const rows = envRows({ B: "2", A: "1" });
    expect(rows).toEqual([
      { id: 1, name: "A", value: "1" },
      { id: 2, name: "B", value: "2" },
    ]);
    expect(buildEnv(rows)).toEqual({ env: { A: "1", B: "2" }, errors: {} });
  });
  it("tell whether anything changed", () => {
    expect(sameEnv({ A: "1" }, { A: "1" })).toBe(true);
    expect(sameEnv({ A: "1" }, { A: "2" })).toBe(false);
    expect(sameEnv({ A: "1" }, { B: "1" })).toBe(false);
    expect(sameEnv({}, { A: "" })).toBe(false);
  });
});

describe("buildUpdateApp", () => {
  const current = { repo_url: "https://example.com/a.git", branch: "main", subdirectory: "web", port: 8000 };
  it("sends only what changed, and nothing when nothing did", () => {
    expect(buildUpdateApp({ repoUrl: current.repo_url, branch: "main", subdirectory: "web", port: "8000", healthCheckPath: "" }, current).body).toBeNull();
    expect(buildUpdateApp({ repoUrl: current.repo_url, branch: "dev", subdirectory: "", port: "9000", healthCheckPath: "/healthz" }, current)).toEqual({
      errors: {},
      body: { branch: "dev", subdirectory: null, port: 9000, health_check_path: "/healthz" },
    });
  });
  it("checks the fields", () => {
    expect(buildUpdateApp({ repoUrl: "ftp://x", branch: "", subdirectory: "/abs", port: "x", healthCheckPath: "healthz" }, current).errors).toEqual({
      repo_url: "must use https:// (ftp:// is not supported)",
      branch: "is required",
      subdirectory: "must be a relative folder inside the repository",
      port: "must be a whole number between 1 and 65535",
      health_check_path: "must be a path starting with a single /, at most 256 characters",
    });
    const spaced = { repoUrl: current.repo_url, branch: "main", subdirectory: "web", port: "8000", healthCheckPath: "/a b" };
    expect(buildUpdateApp(spaced, current).errors).toEqual({
      health_check_path: "may hold only the characters of a URL path and query",
    });
    const cleared = { ...spaced, healthCheckPath: "" };
    expect(buildUpdateApp(cleared, { ...current, health_check_path: "/healthz" }).body).toEqual({ health_check_path: null });
  });
});

describe("parseReplicas", () => {
  it("takes 0 to 20", () => {
    expect(parseReplicas("0")).toEqual({ replicas: 0 });
    expect(parseReplicas("20")).toEqual({ replicas: 20 });
    expect(parseReplicas("21")).toEqual({ error: "must be between 0 (stopped) and 20" });
    expect(parseReplicas("-1")).toEqual({ error: "must be between 0 (stopped) and 20" });
  });
});

describe("canRollBackTo", () => {
  const live = [{ state: "queued" }, { state: "live" }];
  it("offers earlier releases that went live", () => {
    expect(canRollBackTo({ state: "superseded", states: [...live, { state: "superseded" }], release_id: "r1" }, "r2")).toBe(true);
    expect(canRollBackTo({ state: "superseded", states: live, release_id: "r2" }, "r2")).toBe(false);
    expect(canRollBackTo({ state: "failed", states: [{ state: "building" }, { state: "failed" }], release_id: "r3" }, "r2")).toBe(false);
    expect(canRollBackTo({ state: "live", states: live, release_id: "r1" }, "r2")).toBe(false);
  });
  it("does not offer a release whose image retention removed", () => {
    const pruned = { state: "superseded", states: [...live, { state: "superseded" }], release_id: "r1" };
    expect(canRollBackTo({ ...pruned, release_pruned_at: "2026-12-01T10:00:00Z" }, "r2")).toBe(false);
    expect(canRollBackTo({ ...pruned, release_pruned_at: null }, "r2")).toBe(true);
  });
});
