import { describe, expect, it } from "vitest";
import {
  appName,
  email,
  hasErrors,
  password,
  tokenFromHash,
  username,
  validateRegister,
  validateResetConfirm,
  validateSignIn,
  visibleErrors,
} from "./validation";

describe("field checks (same rules and words as the backend)", () => {
  it("username is a DNS-1123 label of at most 40", () => {
    expect(username("alice")).toBeNull();
    expect(username("a-1")).toBeNull();
    expect(username("")).toBe("is required");
    expect(username("Alice")).toBe("may contain only lowercase letters, digits and '-'");
    expect(username("-alice")).toBe("must start and end with a letter or a digit");
    expect(username("a".repeat(41))).toBe("must be 1 to 40 characters long");
  });

  it("app name must also start with a letter", () => {
    expect(appName("hello")).toBeNull();
    expect(appName("1hello")).toBe("must start with a lowercase letter");
    expect(appName("a".repeat(64))).toBe("must be 1 to 63 characters long");
  });

  it("email", () => {
    expect(email("me@example.test")).toBeNull();
    expect(email("")).toBe("is required");
    for (const bad of ["me", "@example.test", "me@localhost", "me@.test", "me@test.", "m e@example.test", "a@b@c.test"]) {
      expect(email(bad), bad).toBe("must be an email address");
    }
  });

  it("password counts characters, not UTF-16 units", () => {
    expect(password("")).toBe("is required");
    expect(password("123456789")).toBe("must be at least 10 characters long");
    expect(password("1234567890")).toBeNull();
    // 5 emoji are 10 UTF-16 units but 5 characters.
    expect(password("😀😀😀😀😀")).toBe("must be at least 10 characters long");
  });
});

describe("form validation", () => {
  it("sign in needs both fields", () => {
    expect(validateSignIn({ login: "", password: "" })).toEqual({ login: "is required", password: "is required" });
    expect(hasErrors(validateSignIn({ login: "me", password: "x" }))).toBe(false);
  });

  it("register reports every bad field, and the confirmation only once the password is acceptable", () => {
    expect(validateRegister({ username: "Me", email: "x", password: "short", confirm: "" })).toEqual({
      username: "may contain only lowercase letters, digits and '-'",
      email: "must be an email address",
      password: "must be at least 10 characters long",
    });
    expect(
      validateRegister({ username: "me", email: "me@example.test", password: "a long password", confirm: "a long passwort" }),
    ).toEqual({ confirm: "does not match the password" });
    expect(
      hasErrors(validateRegister({ username: "me", email: "me@example.test", password: "a long password", confirm: "a long password" })),
    ).toBe(false);
  });

  it("reset confirm", () => {
    expect(validateResetConfirm({ password: "a long password", confirm: "nope" })).toEqual({
      confirm: "does not match the password",
    });
    expect(validateResetConfirm({ password: "a long password", confirm: "a long password" })).toEqual({});
  });
});

describe("tokenFromHash", () => {
  it("reads the token from the link's fragment", () => {
    expect(tokenFromHash("#token=abc-_123")).toBe("abc-_123");
    expect(tokenFromHash("token=abc")).toBe("abc");
    expect(tokenFromHash("#other=1&token=xyz")).toBe("xyz");
    expect(tokenFromHash("")).toBeNull();
    expect(tokenFromHash("#token=")).toBeNull();
  });
});

describe("visibleErrors", () => {
  it("shows the browser's checks over the API's, renames API fields, hides edited fields", () => {
    const api = { username: "is taken", new_password: "is too common", email: "must be an email address" };
    const checks = { email: "is required" };
    expect(visibleErrors(checks, api, new Set(), { new_password: "password" })).toEqual({
      username: "is taken",
      password: "is too common",
      email: "is required",
    });
    expect(visibleErrors(checks, api, new Set(["username", "email"]))).toEqual({ new_password: "is too common" });
  });
});
