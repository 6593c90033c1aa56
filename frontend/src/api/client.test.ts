import { describe, expect, it, vi } from "vitest";
import { ApiClient, type FetchLike } from "./client";
import { ApiProblem } from "./problem";

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
  credentials?: RequestCredentials;
}

function json(status: number, body: unknown, type = "application/json"): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": type } });
}

const unauthorized = () =>
  json(401, { type: "https://berth.dev/problems/unauthorized", title: "Authentication required", status: 401, detail: "expired" }, "application/problem+json");

/** A fake backend: `/auth/refresh` hands out tokens in order; other routes accept only `valid`. */
function fakeBackend(opts: { refreshTokens?: (string | null)[]; valid?: string } = {}) {
  const calls: Call[] = [];
  const refreshTokens = [...(opts.refreshTokens ?? [])];
  let valid = opts.valid ?? "fresh";
  const fetch = vi.fn<FetchLike>(async (url, init = {}) => {
    const headers = (init.headers ?? {}) as Record<string, string>;
    calls.push({
      url,
      method: init.method ?? "GET",
      headers,
      body: init.body ? JSON.parse(init.body as string) : undefined,
      credentials: init.credentials,
    });
    // Let concurrent callers pile up before answering.
    await new Promise((r) => setTimeout(r, 5));
    if (url.endsWith("/auth/refresh")) {
      const next = refreshTokens.shift();
      if (!next) return unauthorized();
      valid = next;
      return json(200, { access_token: next, token_type: "Bearer", expires_in: 900 });
    }
    if (url.endsWith("/auth/login")) {
      return json(200, { access_token: "from-login", token_type: "Bearer", expires_in: 900 });
    }
    if (headers.Authorization !== `Bearer ${valid}`) return unauthorized();
    return json(200, [{ id: "a1", name: "hello" }]);
  });
  return { fetch, calls, setValid: (t: string) => (valid = t) };
}

describe("ApiClient", () => {
  it("attaches the in-memory token", async () => {
    const backend = fakeBackend({ valid: "from-login" });
    const client = new ApiClient({ fetch: backend.fetch });
    await client.login("me", "a long password");
    await client.apps();
    expect(backend.calls[1].headers.Authorization).toBe("Bearer from-login");
  });

  it("asks for the cookie session on login and refresh, never storing a refresh token", async () => {
    const backend = fakeBackend({ refreshTokens: ["fresh"] });
    const client = new ApiClient({ fetch: backend.fetch });
    await client.login("me", "a long password");
    await client.refresh();
    for (const call of backend.calls) {
      expect(call.headers["X-Berth-Session"]).toBe("cookie");
      expect(call.credentials).toBe("same-origin");
    }
    expect(backend.calls[1].body).toEqual({});
    expect(client.token).toBe("fresh");
  });

  it("on 401 refreshes once through the cookie, then retries the call", async () => {
    const backend = fakeBackend({ refreshTokens: ["fresh"], valid: "fresh" });
    const client = new ApiClient({ fetch: backend.fetch });
    await client.login("me", "pw"); // token "from-login", which the fake now rejects
    const apps = await client.apps();
    expect(apps).toEqual([{ id: "a1", name: "hello" }]);
    expect(backend.calls.map((c) => c.url)).toEqual([
      "/api/v1/auth/login",
      "/api/v1/apps",
      "/api/v1/auth/refresh",
      "/api/v1/apps",
    ]);
    expect(backend.calls[3].headers.Authorization).toBe("Bearer fresh");
  });

  it("shares one refresh between concurrent 401s", async () => {
    const backend = fakeBackend({ refreshTokens: ["fresh", "second"], valid: "fresh" });
    const client = new ApiClient({ fetch: backend.fetch });
    await client.login("me", "pw");
    const results = await Promise.all([client.apps(), client.apps(), client.apps()]);
    expect(results).toHaveLength(3);
    expect(backend.calls.filter((c) => c.url.endsWith("/auth/refresh"))).toHaveLength(1);
    expect(client.token).toBe("fresh");
  });

  it("retries with a token another call already renewed, without refreshing again", async () => {
    let releaseSlow!: () => void;
    const slowGate = new Promise<void>((r) => (releaseSlow = r));
    const calls: string[] = [];
    const fetch = vi.fn<FetchLike>(async (url, init = {}) => {
      const auth = ((init.headers ?? {}) as Record<string, string>).Authorization;
      calls.push(`${url} ${auth ?? ""}`.trim());
      if (url.endsWith("/auth/login")) return json(200, { access_token: "old", token_type: "Bearer", expires_in: 900 });
      if (url.endsWith("/auth/refresh")) return json(200, { access_token: "new", token_type: "Bearer", expires_in: 900 });
      if (url.endsWith("/apps") && auth === "Bearer old") {
        await slowGate; // answers after the other call has renewed the token
        return unauthorized();
      }
      return auth === "Bearer new" ? json(200, []) : unauthorized();
    });
    const client = new ApiClient({ fetch });
    await client.login("me", "pw");
    const slow = client.apps();
    await client.me(); // 401, refresh, retry with "new"
    releaseSlow();
    await expect(slow).resolves.toEqual([]);
    expect(calls.filter((c) => c.includes("/auth/refresh"))).toHaveLength(1);
    expect(calls.at(-1)).toBe("/api/v1/apps Bearer new");
  });

  it("when the refresh fails, signs out and throws the original 401 as an ApiProblem", async () => {
    const backend = fakeBackend({ refreshTokens: [] });
    const client = new ApiClient({ fetch: backend.fetch });
    const heard: (string | null)[] = [];
    client.subscribe((t) => heard.push(t));
    await client.login("me", "pw");
    const err = await client.apps().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiProblem);
    expect((err as ApiProblem).status).toBe(401);
    expect(client.token).toBeNull();
    expect(heard).toEqual(["from-login", null]);
    // Exactly one refresh and no second try of the call.
    expect(backend.calls.map((c) => c.url)).toEqual(["/api/v1/auth/login", "/api/v1/apps", "/api/v1/auth/refresh"]);
  });

  it("does not refresh for calls made without auth (a wrong password stays a 401)", async () => {
    const fetch = vi.fn<FetchLike>(async () =>
      json(401, { type: "https://berth.dev/problems/invalid-credentials", title: "Invalid credentials", status: 401, detail: "the login or the password is wrong" }, "application/problem+json"),
    );
    const client = new ApiClient({ fetch });
    const err = await client.login("me", "wrong").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiProblem);
    expect((err as ApiProblem).slug).toBe("invalid-credentials");
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it("keeps the token when the refresh fails for want of a network", async () => {
    let calls = 0;
    const fetch = vi.fn<FetchLike>(async (url) => {
      calls++;
      if (url.endsWith("/auth/login")) return json(200, { access_token: "t", token_type: "Bearer", expires_in: 900 });
      if (url.endsWith("/auth/refresh")) throw new TypeError("Failed to fetch");
      return unauthorized();
    });
    const client = new ApiClient({ fetch });
    await client.login("me", "pw");
    await expect(client.apps()).rejects.toBeInstanceOf(ApiProblem);
    expect(client.token).toBe("t");
    expect(calls).toBe(3);
  });

  it("turns a fetch failure into a network problem", async () => {
    const client = new ApiClient({ fetch: async () => Promise.reject(new TypeError("Failed to fetch")) });
    const err = await client.requestPasswordReset("a@b.test").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiProblem);
    expect((err as ApiProblem).status).toBe(0);
  });

  it("logout forgets the token even when the server call fails", async () => {
    const fetch = vi.fn<FetchLike>(async (url) =>
      url.endsWith("/auth/login") ? json(200, { access_token: "t", token_type: "Bearer", expires_in: 900 }) : json(500, {}),
    );
    const client = new ApiClient({ fetch });
    await client.login("me", "pw");
    await expect(client.logout()).rejects.toBeInstanceOf(ApiProblem);
    expect(client.token).toBeNull();
    const logout = fetch.mock.calls[1];
    expect(logout[0]).toBe("/api/v1/auth/logout");
    expect((logout[1]!.headers as Record<string, string>)["X-Berth-Session"]).toBe("cookie");
  });

  it("answers undefined for empty 202/204 bodies", async () => {
    const client = new ApiClient({ fetch: async () => new Response(null, { status: 204 }) });
    await expect(client.confirmPasswordReset("tok", "a long password")).resolves.toBeUndefined();
  });
});

describe("sign-up", () => {
  function answering(status: number, body: unknown) {
    const calls: Call[] = [];
    const fetch = vi.fn<FetchLike>(async (url, init = {}) => {
      calls.push({
        url,
        method: init.method ?? "GET",
        headers: (init.headers ?? {}) as Record<string, string>,
        body: init.body ? JSON.parse(init.body as string) : undefined,
        credentials: init.credentials,
      });
      return json(status, body);
    });
    return { client: new ApiClient({ fetch }), calls };
  }

  it("tells a mailed confirmation from an account made at once", async () => {
    const mailed = answering(202, { status: "check your inbox at a@b.c: the link in the mail finishes signing up" });
    expect(await mailed.client.register("alice", "a@b.c", "a long password")).toBe("mailed");
    expect(mailed.client.signedIn).toBe(false);
    const made = answering(201, { id: "u1", username: "alice", email: "a@b.c", created_at: "2026-12-03T00:00:00Z" });
    expect(await made.client.register("alice", "a@b.c", "a long password")).toBe("created");
  });

  it("confirms with the cookie session and is signed in", async () => {
    const backend = answering(201, { access_token: "new-account", token_type: "Bearer", expires_in: 900 });
    await backend.client.confirmRegistration("tok", "a long password");
    expect(backend.client.signedIn).toBe(true);
    const [call] = backend.calls;
    expect(call.url).toMatch(/\/api\/v1\/auth\/register\/confirm$/);
    expect(call.body).toEqual({ token: "tok", password: "a long password" });
    expect(call.headers["X-Berth-Session"]).toBe("cookie");
    expect(call.credentials).toBe("same-origin");
  });
});

describe("linking GitHub", () => {
  it("posts the password and asks for the browser's flow", async () => {
    const calls: Call[] = [];
    const fetch = vi.fn<FetchLike>(async (url, init = {}) => {
      calls.push({
        url,
        method: init.method ?? "GET",
        headers: (init.headers ?? {}) as Record<string, string>,
        body: init.body ? JSON.parse(init.body as string) : undefined,
      });
      return json(200, { url: "https://github.example/login/oauth/authorize?state=s" });
    });
    const client = new ApiClient({ fetch });
    expect(await client.githubLinkUrl("my password")).toBe("https://github.example/login/oauth/authorize?state=s");
    expect(calls[0].url).toMatch(/\/api\/v1\/auth\/github\/link$/);
    expect(calls[0].method).toBe("POST");
    expect(calls[0].body).toEqual({ current_password: "my password", browser: true });
    await client.githubLinkUrl(null);
    expect(calls[1].body).toEqual({ browser: true });
  });
});

describe("a refresh that loses the race with a sign-in", () => {
  it("keeps the token the sign-in brought", async () => {
    let answerRefresh: (r: Response) => void = () => {};
    const fetch = vi.fn<FetchLike>((url) => {
      if (url.endsWith("/auth/refresh")) return new Promise<Response>((resolve) => (answerRefresh = resolve));
      return Promise.resolve(json(201, { access_token: "confirmed", token_type: "Bearer", expires_in: 900 }));
    });
    const client = new ApiClient({ fetch });
    const refreshed = client.refresh();
    await client.confirmRegistration("tok", "a long password");
    answerRefresh(unauthorized());
    expect(await refreshed).toBe(true);
    expect(client.signedIn).toBe(true);
  });
});
