import { describe, expect, it } from "vitest";
import { ApiProblem, networkProblem, parseRetryAfter, plainMessage, problemFromResponse, withSubject } from "./problem";

function problemResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

describe("problemFromResponse", () => {
  it("keeps every field error, keyed by field", async () => {
    const p = await problemFromResponse(
      problemResponse(422, {
        type: "https://berth.dev/problems/validation",
        title: "Invalid request",
        status: 422,
        detail: "3 fields are invalid",
        errors: [
          { field: "username", message: "may contain only lowercase letters, digits and '-'" },
          { field: "email", message: "must be an email address" },
          { field: "password", message: "must be at least 10 characters long" },
        ],
      }),
    );
    expect(p).toBeInstanceOf(ApiProblem);
    expect(p.status).toBe(422);
    expect(p.slug).toBe("validation");
    expect(p.fieldErrors()).toEqual({
      username: "may contain only lowercase letters, digits and '-'",
      email: "must be an email address",
      password: "must be at least 10 characters long",
    });
  });

  it("joins two messages for the same field", async () => {
    const p = await problemFromResponse(
      problemResponse(422, {
        status: 422,
        detail: "x",
        errors: [
          { field: "env.FOO", message: "is too long" },
          { field: "env.FOO", message: "must not contain NUL" },
        ],
      }),
    );
    expect(p.fieldErrors()).toEqual({ "env.FOO": "is too long; must not contain NUL" });
  });

  it("ignores malformed entries in errors", async () => {
    const p = await problemFromResponse(
      problemResponse(422, { status: 422, detail: "x", errors: [{ field: 1 }, null, { field: "a", message: "b" }] }),
    );
    expect(p.errors).toEqual([{ field: "a", message: "b" }]);
  });

  it("makes a problem from a non-JSON answer", async () => {
    const p = await problemFromResponse(
      new Response("<html>Bad gateway</html>", { status: 502, statusText: "Bad Gateway", headers: { "content-type": "text/html" } }),
    );
    expect(p.status).toBe(502);
    expect(p.errors).toEqual([]);
    expect(plainMessage(p)).toBe("Something went wrong on the server. Try again in a moment.");
  });

  it("reads Retry-After from a 429", async () => {
    const p = await problemFromResponse(
      problemResponse(429, { status: 429, title: "Too many requests", detail: "slow down" }, { "retry-after": "30" }),
    );
    expect(p.retryAfter).toBe(30);
    expect(plainMessage(p)).toBe("Too many attempts. Try again in 30 seconds.");
  });

  it("says which quota a quota-exceeded problem hit, whatever its status", async () => {
    for (const status of [422, 429]) {
      const p = await problemFromResponse(
        problemResponse(status, {
          type: "https://berth.dev/problems/quota-exceeded",
          status,
          title: "Over a quota",
          detail: "you have 20 apps, the limit of your account",
          limit: "apps",
        }),
      );
      expect(plainMessage(p)).toBe("You have 20 apps, the limit of your account.");
    }
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("5")).toBe(5);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter("soon")).toBeNull();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:02:00 GMT", now)).toBe(120);
  });
});

describe("plainMessage", () => {
  const validation = new ApiProblem({
    status: 422,
    detail: "2 fields are invalid",
    errors: [
      { field: "username", message: "is taken" },
      { field: "new_password", message: "must be at least 10 characters long" },
    ],
  });

  it("points at the fields when all are shown next to them", () => {
    expect(plainMessage(validation, ["username", "new_password"])).toBe("Please correct the fields marked below.");
  });

  it("spells out errors for fields the form does not show", () => {
    expect(plainMessage(validation, ["username"])).toBe("New password must be at least 10 characters long.");
  });

  it("lets a field message that is a whole sentence read on its own", () => {
    const p = new ApiProblem({
      status: 422,
      detail: "token: this reset link is invalid, expired or already used; ask for a new one",
      errors: [{ field: "token", message: "this reset link is invalid, expired or already used; ask for a new one" }],
    });
    expect(plainMessage(p, ["new_password"])).toBe(
      "This reset link is invalid, expired or already used; ask for a new one.",
    );
  });

  it("uses the detail, capitalised and ended, otherwise", () => {
    const p = new ApiProblem({ status: 401, title: "Invalid credentials", detail: "the login or the password is wrong" });
    expect(plainMessage(p)).toBe("The login or the password is wrong.");
  });

  it("mentions the error id of a server error", () => {
    const p = new ApiProblem({ status: 500, detail: "internal", error_id: "abc123" });
    expect(plainMessage(p)).toBe("Something went wrong on the server (reference abc123). Try again in a moment.");
  });

  it("explains network failures", () => {
    expect(plainMessage(networkProblem(new TypeError("Failed to fetch")))).toMatch(/Could not reach berth/);
  });
});

describe("withSubject", () => {
  it("puts the field's name before a predicate, not before a sentence", () => {
    expect(withSubject("Email", "must be an email address")).toBe("Email must be an email address");
    expect(withSubject("username", "is already taken")).toBe("Username is already taken");
    expect(withSubject("Token", "this link expired")).toBe("This link expired");
  });
});
