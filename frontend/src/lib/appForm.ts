// The create-app form's rules: what the browser checks before sending
// (mirroring backend/src/validate.rs) and the request body it sends.

import { appName, gitRef, repoUrl, type Errors } from "./validation";

export interface EnvRow {
  /** Stable key for React lists; not sent. */
  id: number;
  name: string;
  value: string;
}

export interface AppFormValues {
  name: string;
  repoUrl: string;
  branch: string;
  subdirectory: string;
  port: string;
  env: EnvRow[];
}

export interface CreateAppBody {
  name: string;
  repo_url: string;
  branch: string;
  subdirectory: string | null;
  port: number;
  env: Record<string, string>;
}

export const DEFAULT_PORT = 8000;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `env.NAME` for a row with a name, `env#<id>` for one without: where to show the row's error. */
export function envRowField(row: EnvRow): string {
  return row.name.trim() ? `env.${row.name.trim()}` : `env#${row.id}`;
}

export function checkSubdirectory(value: string): string | null {
  const bad =
    value.length > 1024 ||
    value.startsWith("/") ||
    value.includes("\\") ||
    value.split("/").some((part) => part === "..");
  return bad ? "must be a relative folder inside the repository" : null;
}

/** The backend's rule: a path with a single leading slash, the characters of a URL path and query. */
export function checkHealthCheckPath(value: string): string | null {
  if (!value.startsWith("/") || value.startsWith("//") || value.length > 256) {
    return "must be a path starting with a single /, at most 256 characters";
  }
  return /^[A-Za-z0-9\/\-._~!$&'()*+,;=:@%?]*$/.test(value) ? null : "may hold only the characters of a URL path and query";
}

export function parsePort(value: string): { port: number } | { error: string } {
  const trimmed = value.trim();
  if (trimmed === "") return { port: DEFAULT_PORT };
  if (!/^\d+$/.test(trimmed)) return { error: "must be a whole number between 1 and 65535" };
  const port = Number(trimmed);
  return port >= 1 && port <= 65535 ? { port } : { error: "must be between 1 and 65535" };
}

/** Env var rows → the map the API takes, with each bad row's error (keyed by envRowField). */
export function buildEnv(rows: readonly EnvRow[]): { env: Record<string, string>; errors: Errors } {
  const env: Record<string, string> = {};
  const errors: Errors = {};
  for (const row of rows) {
    const key = row.name.trim();
    if (!key && !row.value) continue; // an empty row is ignored
    const field = envRowField(row);
    if (!key) errors[field] = "needs a name";
    else if (!ENV_NAME.test(key)) errors[field] = "names must match [A-Za-z_][A-Za-z0-9_]*";
    else if (key === "PORT") errors[field] = "PORT is set by berth from the app's port";
    else if (key in env) errors[field] = "is given twice";
    else env[key] = row.value;
  }
  return { env, errors };
}

/** The API's env map as rows, sorted by name, ids from `firstId`. */
export function envRows(env: Readonly<Record<string, string>>, firstId = 1): EnvRow[] {
  return Object.keys(env)
    .sort()
    .map((name, i) => ({ id: firstId + i, name, value: env[name] }));
}

/** Whether two env maps hold the same variables and values. */
export function sameEnv(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && b[k] === a[k]);
}

/** Checks every field; answers the body to send when nothing is wrong. */
export function buildCreateApp(
  v: AppFormValues,
  opts: { allowLocal?: boolean } = {},
): { errors: Errors; body: CreateAppBody | null } {
  const errors: Errors = {};
  const name = v.name.trim();
  const nameErr = appName(name);
  if (nameErr) errors.name = nameErr;
  const url = v.repoUrl.trim();
  const urlErr = repoUrl(url, opts.allowLocal ?? false);
  if (urlErr) errors.repo_url = urlErr;
  const branch = v.branch.trim() || "main";
  const branchErr = gitRef(branch);
  if (branchErr) errors.branch = branchErr;
  const subdirectory = v.subdirectory.trim().replace(/^\.\/+/, "").replace(/\/+$/, "");
  const subErr = subdirectory ? checkSubdirectory(subdirectory) : null;
  if (subErr) errors.subdirectory = subErr;
  const port = parsePort(v.port);
  if ("error" in port) errors.port = port.error;

  const { env, errors: envErrors } = buildEnv(v.env);
  Object.assign(errors, envErrors);

  if (Object.keys(errors).length > 0 || "error" in port) return { errors, body: null };
  return {
    errors,
    body: { name, repo_url: url, branch, subdirectory: subdirectory || null, port: port.port, env },
  };
}

/** `octocat/Hello_World` → `hello-world`, or "" when nothing usable is left. */
export function suggestName(fullName: string): string {
  const repo = fullName.split("/").pop() ?? "";
  const name = repo
    .toLowerCase()
    .replace(/\.git$/, "")
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^[^a-z]+/, "")
    .replace(/-+/g, "-")
    .slice(0, 63)
    .replace(/-+$/, "");
  return name;
}

export interface SettingsValues {
  repoUrl: string;
  branch: string;
  subdirectory: string;
  port: string;
  /** Empty: accepting connections on the port is healthy. */
  healthCheckPath: string;
}

export type UpdateAppBody = Partial<{
  repo_url: string;
  branch: string;
  subdirectory: string | null;
  port: number;
  health_check_path: string | null;
}>;

/** The settings form's checks, and a PATCH body holding only what changed (null when nothing did). */
export function buildUpdateApp(
  v: SettingsValues,
  current: {
    repo_url: string;
    branch: string;
    subdirectory?: string | null;
    port: number;
    health_check_path?: string | null;
  },
): { errors: Errors; body: UpdateAppBody | null } {
  const errors: Errors = {};
  const url = v.repoUrl.trim();
  const urlErr = repoUrl(url, true);
  if (urlErr) errors.repo_url = urlErr;
  const branch = v.branch.trim();
  const branchErr = gitRef(branch);
  if (branchErr) errors.branch = branch ? branchErr : "is required";
  const subdirectory = v.subdirectory.trim().replace(/^\.\/+/, "").replace(/\/+$/, "");
  const subErr = subdirectory ? checkSubdirectory(subdirectory) : null;
  if (subErr) errors.subdirectory = subErr;
  const port = parsePort(v.port);
  if ("error" in port) errors.port = port.error;
  const health = (v.healthCheckPath ?? "").trim();
  const healthErr = health ? checkHealthCheckPath(health) : null;
  if (healthErr) errors.health_check_path = healthErr;
  if (Object.keys(errors).length > 0 || "error" in port) return { errors, body: null };
  const body: UpdateAppBody = {};
  if ((health || null) !== (current.health_check_path ?? null)) body.health_check_path = health || null;
  if (url !== current.repo_url) body.repo_url = url;
  if (branch !== current.branch) body.branch = branch;
  if ((subdirectory || null) !== (current.subdirectory ?? null)) body.subdirectory = subdirectory || null;
  if (port.port !== current.port) body.port = port.port;
  return { errors, body: Object.keys(body).length ? body : null };
}

export const MAX_REPLICAS = 20;

export function parseReplicas(value: string): { replicas: number } | { error: string } {
  const t = value.trim();
  if (!/^\d+$/.test(t) || Number(t) > MAX_REPLICAS) return { error: `must be between 0 (stopped) and ${MAX_REPLICAS}` };
  return { replicas: Number(t) };
}

/**
 * A deployment can be rolled back to when it once went live, its release is not the one running,
 * and retention has not removed the release's image.
 */
export function canRollBackTo(
  d: { state: string; states: { state: string }[]; release_id: string; release_pruned_at?: string | null },
  currentReleaseId: string | null | undefined,
): boolean {
  return (
    d.release_id !== currentReleaseId &&
    d.state !== "live" &&
    !d.release_pruned_at &&
    d.states.some((s) => s.state === "live")
  );
}
