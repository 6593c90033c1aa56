// The one way the UI talks to the API.
//
// * The access token lives in this object's memory only: never in
//   localStorage or sessionStorage, so a script injected into the page cannot
//   read a stored token, and a reload starts without one.
// * The refresh token is the backend's session cookie (HttpOnly,
//   SameSite=Strict; `__Host-berth_refresh` over https, `berth_refresh` on
//   plain http): every call that may set or read it sends
//   `X-Berth-Session: cookie`. JavaScript never sees that token.
// * A 401 on an authenticated call triggers one refresh through the cookie
//   (single-flight: concurrent 401s share it), then the call is retried once.
//   If the refresh fails the session is over and listeners hear `null`.

import { ApiProblem, networkProblem, problemFromResponse } from "./problem";
import type {
  App,
  AuditEvent,
  Branch,
  Domain,
  Deployment,
  Profile,
  Quota,
  Repo,
  Session,
  TokenResponse,
  User,
  Webhook,
  WebhookSecret,
} from "./types";
import type { CreateAppBody } from "../lib/appForm";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;
export type TokenListener = (token: string | null) => void;

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** false for calls that must not send the access token or refresh on 401. */
  auth?: boolean;
  /** Ask for the refresh token in the session cookie instead of the body. */
  cookieSession?: boolean;
  signal?: AbortSignal;
}

export const SESSION_HEADER = "X-Berth-Session";

export class ApiClient {
  private accessToken: string | null = null;
  private refreshing: Promise<boolean> | null = null;
  private readonly listeners = new Set<TokenListener>();
  private readonly fetchImpl: FetchLike;
  private readonly baseUrl: string;

  constructor(options: { fetch?: FetchLike; baseUrl?: string } = {}) {
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.baseUrl = options.baseUrl ?? "/api/v1";
  }

  get token(): string | null {
    return this.accessToken;
  }

  get signedIn(): boolean {
    return this.accessToken !== null;
  }

  /** Hears every change of the access token; `null` means signed out. */
  subscribe(listener: TokenListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private setToken(token: string | null): void {
    if (token === this.accessToken) return;
    this.accessToken = token;
    for (const listener of [...this.listeners]) listener(token);
  }

  private async send(path: string, options: RequestOptions, token: string | null): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json, application/problem+json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (token && options.auth !== false) headers.Authorization = `Bearer ${token}`;
    if (options.cookieSession) headers[SESSION_HEADER] = "cookie";
    try {
      return await this.fetchImpl(this.baseUrl + path, {
        method: options.method ?? "GET",
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        credentials: "same-origin",
        signal: options.signal,
      });
    } catch (err) {
      if (options.signal?.aborted) throw err;
      throw networkProblem(err);
    }
  }

  private static async parse<T>(res: Response): Promise<T> {
    if (!res.ok) throw await problemFromResponse(res);
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async request<T>(path: string, options: RequestOptions = {}): Promise<T> {
    const used = this.accessToken;
    const first = await this.send(path, options, used);
    if (first.status !== 401 || options.auth === false) return ApiClient.parse<T>(first);
    // Another call may have refreshed while this one was in flight: then the
    // new token is tried without spending another refresh.
    const renewed = this.accessToken !== null && this.accessToken !== used;
    if (!renewed && !(await this.refresh())) return ApiClient.parse<T>(first);
    const second = await this.send(path, options, this.accessToken);
    if (second.status === 401) this.setToken(null);
    return ApiClient.parse<T>(second);
  }

  /**
   * Exchanges the refresh cookie for a new access token. Concurrent callers
   * share one request (the backend rotates the refresh token on each use, so
   * two parallel refreshes would race). Resolves false when there is no
   * session; a network failure also resolves false but keeps the token.
   */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    // A sign-in may finish while this is in flight (the page opened on a
    // confirmation link refreshes on start): its token is newer than
    // anything this answer says, so it stays.
    const before = this.accessToken;
    const stillCurrent = () => this.accessToken === before;
    let res: Response;
    try {
      res = await this.send("/auth/refresh", { method: "POST", body: {}, auth: false, cookieSession: true }, null);
    } catch {
      return false;
    }
    if (res.ok) {
      const tokens = (await res.json()) as TokenResponse;
      if (stillCurrent()) this.setToken(tokens.access_token);
      return true;
    }
    if (!stillCurrent()) return this.accessToken !== null;
    if (res.status === 400 || res.status === 401 || res.status === 403) this.setToken(null);
    return false;
  }

  // --- auth -------------------------------------------------------------

  async login(login: string, password: string): Promise<void> {
    const tokens = await this.request<TokenResponse>("/auth/login", {
      method: "POST",
      body: { login, password },
      auth: false,
      cookieSession: true,
    });
    this.setToken(tokens.access_token);
  }

  /**
   * With mail configured (the usual case) the account waits until the link
   * mailed to the address is opened, and the answer is the same whether or
   * not the name is free; without mail it exists at once.
   */
  async register(username: string, email: string, password: string): Promise<"mailed" | "created"> {
    const body = await this.request<User | { status: string }>("/auth/register", {
      method: "POST",
      body: { username, email, password },
      auth: false,
    });
    return "status" in body ? "mailed" : "created";
  }

  /**
   * Finishes a sign-up with the mailed token and the password chosen when
   * signing up (so that whoever only holds the mailbox cannot finish a
   * stranger's sign-up); the new account is signed in.
   */
  async confirmRegistration(token: string, password: string): Promise<void> {
    const tokens = await this.request<TokenResponse>("/auth/register/confirm", {
      method: "POST",
      body: { token, password },
      auth: false,
      cookieSession: true,
    });
    this.setToken(tokens.access_token);
  }

  confirmEmailChange(token: string): Promise<void> {
    return this.request<void>("/auth/email-change/confirm", { method: "POST", body: { token }, auth: false });
  }

  /** Ends the session on the server and forgets the token, whatever the server says. */
  async logout(): Promise<void> {
    try {
      await this.request<void>("/auth/logout", { method: "POST", body: {}, auth: false, cookieSession: true });
    } finally {
      this.setToken(null);
    }
  }

  requestPasswordReset(email: string): Promise<void> {
    return this.request<void>("/auth/password-reset", { method: "POST", body: { email }, auth: false });
  }

  confirmPasswordReset(token: string, newPassword: string): Promise<void> {
    return this.request<void>("/auth/password-reset/confirm", {
      method: "POST",
      body: { token, new_password: newPassword },
      auth: false,
    });
  }

  /**
   * Where to send the browser for GitHub sign-in; it comes back to `/` with
   * the cookie set. The answer also gives this browser the cookie the
   * callback checks, so the flow must finish in this browser.
   */
  async githubSignInUrl(): Promise<string> {
    const { url } = await this.request<{ url: string }>("/auth/github/start?browser=true", { auth: false });
    return url;
  }

  // --- account ----------------------------------------------------------

  me(signal?: AbortSignal): Promise<Profile> {
    return this.request<Profile>("/me", { signal });
  }

  /** The account's quotas and what its apps use of them. */
  quota(signal?: AbortSignal): Promise<Quota> {
    return this.request<Quota>("/me/quota", { signal });
  }

  /** A single-use ticket for the event stream or a log WebSocket. */
  async ticket(): Promise<string> {
    const { ticket } = await this.request<{ ticket: string; expires_in: number }>("/ws-tickets", { method: "POST" });
    return ticket;
  }

  updateProfile(body: { display_name?: string | null; email?: string; current_password?: string }): Promise<Profile> {
    return this.request<Profile>("/me", { method: "PATCH", body });
  }

  /** Ends every session, this one included, and answers a new pair: the new refresh token is set as the cookie. */
  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const tokens = await this.request<TokenResponse>("/me/password", {
      method: "PUT",
      body: { current_password: currentPassword, new_password: newPassword },
      cookieSession: true,
    });
    this.setToken(tokens.access_token);
  }

  sessions(signal?: AbortSignal): Promise<Session[]> {
    return this.request<Session[]>("/me/sessions", { signal });
  }

  endSession(id: string): Promise<void> {
    return this.request<void>(`/me/sessions/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /**
   * Where to send the browser to link a GitHub account to this one. Needs
   * the password (an account without one must have signed in recently);
   * GitHub sends the browser back to `/account?github=linked`.
   */
  async githubLinkUrl(currentPassword: string | null): Promise<string> {
    const { url } = await this.request<{ url: string }>("/auth/github/link", {
      method: "POST",
      body: { current_password: currentPassword ?? undefined, browser: true },
    });
    return url;
  }

  unlinkGithub(): Promise<void> {
    return this.request<void>("/me/github", { method: "DELETE" });
  }

  /** Deletes the account; the session is over afterwards. */
  async deleteAccount(confirm: string, password: string | null): Promise<void> {
    await this.request<void>("/me", { method: "DELETE", body: { confirm, password } });
    this.setToken(null);
  }

  audit(params: { before?: string; limit?: number } = {}, signal?: AbortSignal): Promise<AuditEvent[]> {
    const q = new URLSearchParams();
    if (params.before) q.set("before", params.before);
    if (params.limit) q.set("limit", String(params.limit));
    const qs = q.toString();
    return this.request<AuditEvent[]>(`/audit${qs ? `?${qs}` : ""}`, { signal });
  }

  // --- GitHub (answers 409 when no GitHub account is linked) -------------

  githubRepos(signal?: AbortSignal): Promise<Repo[]> {
    return this.request<Repo[]>("/github/repos", { signal });
  }

  githubBranches(fullName: string, signal?: AbortSignal): Promise<Branch[]> {
    const [owner, repo] = fullName.split("/");
    return this.request<Branch[]>(
      `/github/repos/${encodeURIComponent(owner)}/${encodeURIComponent(repo)}/branches`,
      { signal },
    );
  }

  // --- apps -------------------------------------------------------------

  apps(signal?: AbortSignal): Promise<App[]> {
    return this.request<App[]>("/apps", { signal });
  }

  createApp(body: CreateAppBody): Promise<App> {
    return this.request<App>("/apps", { method: "POST", body });
  }

  app(id: string, signal?: AbortSignal): Promise<App> {
    return this.request<App>(`/apps/${encodeURIComponent(id)}`, { signal });
  }

  appEnv(id: string, signal?: AbortSignal): Promise<{ env: Record<string, string>; env_version: number }> {
    return this.request(`/apps/${encodeURIComponent(id)}/env`, { signal });
  }

  /** Absent fields stay; `env` replaces the whole set. */
  updateApp(
    id: string,
    body: Partial<{
      repo_url: string;
      branch: string;
      subdirectory: string | null;
      port: number;
      health_check_path: string | null;
      env: Record<string, string>;
      resources: Partial<{ memory_mb: number | null; cpu_millis: number | null }>;
    }>,
  ): Promise<App> {
    return this.request<App>(`/apps/${encodeURIComponent(id)}`, { method: "PATCH", body });
  }

  scale(id: string, replicas: number): Promise<App> {
    return this.request<App>(`/apps/${encodeURIComponent(id)}/scale`, { method: "PUT", body: { replicas } });
  }

  /** Deploys an earlier release again, without rebuilding. */
  rollBack(appId: string, releaseId: string): Promise<Deployment> {
    return this.request<Deployment>(`/apps/${encodeURIComponent(appId)}/deployments`, {
      method: "POST",
      body: { release_id: releaseId },
    });
  }

  deleteApp(id: string): Promise<void> {
    return this.request<void>(`/apps/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  webhook(appId: string, signal?: AbortSignal): Promise<Webhook> {
    return this.request<Webhook>(`/apps/${encodeURIComponent(appId)}/webhook`, { signal });
  }

  /** Makes or rotates the secret (shown only in this answer); with a token berth registers the hook on GitHub. */
  createWebhook(appId: string, githubToken?: string): Promise<WebhookSecret> {
    return this.request<WebhookSecret>(`/apps/${encodeURIComponent(appId)}/webhook`, {
      method: "POST",
      body: githubToken ? { github_token: githubToken } : {},
    });
  }

  domains(appId: string, signal?: AbortSignal): Promise<Domain[]> {
    return this.request<Domain[]>(`/apps/${encodeURIComponent(appId)}/domains`, { signal });
  }

  /** Adds a domain; it serves once the TXT record in the answer is found. */
  addDomain(appId: string, hostname: string): Promise<Domain> {
    return this.request<Domain>(`/apps/${encodeURIComponent(appId)}/domains`, {
      method: "POST",
      body: { hostname },
    });
  }

  /** Looks for the domain's TXT record now. */
  verifyDomain(appId: string, hostname: string): Promise<Domain> {
    const path = `/apps/${encodeURIComponent(appId)}/domains/${encodeURIComponent(hostname)}/verify`;
    return this.request<Domain>(path, { method: "POST" });
  }

  removeDomain(appId: string, hostname: string): Promise<void> {
    const path = `/apps/${encodeURIComponent(appId)}/domains/${encodeURIComponent(hostname)}`;
    return this.request<void>(path, { method: "DELETE" });
  }

  deleteWebhook(appId: string): Promise<void> {
    return this.request<void>(`/apps/${encodeURIComponent(appId)}/webhook`, { method: "DELETE" });
  }

  deployments(appId: string, signal?: AbortSignal): Promise<Deployment[]> {
    return this.request<Deployment[]>(`/apps/${encodeURIComponent(appId)}/deployments`, { signal });
  }

  /** Stops a deployment in progress; one that already ended answers 409. */
  cancelDeployment(id: string): Promise<Deployment> {
    return this.request<Deployment>(`/deployments/${encodeURIComponent(id)}/cancel`, { method: "POST", body: {} });
  }

  deploy(appId: string): Promise<Deployment> {
    return this.request<Deployment>(`/apps/${encodeURIComponent(appId)}/deployments`, { method: "POST", body: {} });
  }
}

export { ApiProblem };

/** The client the app uses; tests make their own. */
export const api = new ApiClient();
