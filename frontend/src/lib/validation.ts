// Checks run in the browser before a form is sent, mirroring the backend's
// rules (backend/src/validate.rs) so most mistakes are caught without a
// round trip. The backend stays the judge: its field errors are shown the
// same way. Each check returns the message shown next to the field, or null.

export type Errors<F extends string = string> = Partial<Record<F, string>>;

export const MIN_PASSWORD_CHARS = 10;
export const MAX_USERNAME_LEN = 40;
export const MAX_APP_NAME_LEN = 63;

export function required(value: string): string | null {
  return value.trim() === "" ? "is required" : null;
}

export function dnsLabel(value: string, maxLen: number): string | null {
  if (value.length === 0 || value.length > maxLen) return `must be 1 to ${maxLen} characters long`;
  if (!/^[a-z0-9-]+$/.test(value)) return "may contain only lowercase letters, digits and '-'";
  if (value.startsWith("-") || value.endsWith("-")) return "must start and end with a letter or a digit";
  return null;
}

export function username(value: string): string | null {
  return required(value) ?? dnsLabel(value, MAX_USERNAME_LEN);
}

export function appName(value: string): string | null {
  const err = required(value) ?? dnsLabel(value, MAX_APP_NAME_LEN);
  if (err) return err;
  return /^[a-z]/.test(value) ? null : "must start with a lowercase letter";
}

export function email(value: string): string | null {
  if (required(value)) return "is required";
  const at = value.indexOf("@");
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  const ok =
    value.length <= 254 &&
    !/\s/.test(value) &&
    at > 0 &&
    local.length > 0 &&
    domain.includes(".") &&
    !domain.startsWith(".") &&
    !domain.endsWith(".") &&
    !domain.includes("@");
  return ok ? null : "must be an email address";
}

export function password(value: string): string | null {
  if (value.length === 0) return "is required";
  // Characters as the backend counts them (Unicode scalar values), not UTF-16 units.
  return [...value].length < MIN_PASSWORD_CHARS ? `must be at least ${MIN_PASSWORD_CHARS} characters long` : null;
}

export function confirmation(value: string, original: string): string | null {
  return value === original ? null : "does not match the password";
}

/** Runs each field's check; the result has only the fields that failed. */
export function collect<F extends string>(checks: Record<F, string | null>): Errors<F> {
  const out: Errors<F> = {};
  for (const field of Object.keys(checks) as F[]) {
    const message = checks[field];
    if (message) out[field] = message;
  }
  return out;
}

export function hasErrors(errors: Errors): boolean {
  return Object.values(errors).some(Boolean);
}

export function validateSignIn(v: { login: string; password: string }): Errors<"login" | "password"> {
  return collect({ login: required(v.login), password: required(v.password) });
}

export function validateRegister(v: {
  username: string;
  email: string;
  password: string;
  confirm: string;
}): Errors<"username" | "email" | "password" | "confirm"> {
  return collect({
    username: username(v.username),
    email: email(v.email),
    password: password(v.password),
    confirm: v.password && !password(v.password) ? confirmation(v.confirm, v.password) : null,
  });
}

export function validateResetConfirm(v: { password: string; confirm: string }): Errors<"password" | "confirm"> {
  return collect({
    password: password(v.password),
    confirm: !password(v.password) ? confirmation(v.confirm, v.password) : null,
  });
}

/** The token in a reset link's fragment: `/reset-password#token=…`. */
export function tokenFromHash(hash: string): string | null {
  const params = new URLSearchParams(hash.startsWith("#") ? hash.slice(1) : hash);
  const token = params.get("token");
  return token && token.trim() ? token.trim() : null;
}

/**
 * The errors to show next to fields: the browser's own checks win over the
 * API's field errors (renamed through `aliases`, e.g. the API's
 * `new_password` is the form's `password`); a field edited since the last
 * submit shows none until the next one.
 */
export function visibleErrors(
  checks: Errors,
  apiErrors: Record<string, string>,
  edited: ReadonlySet<string>,
  aliases: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [field, message] of Object.entries(apiErrors)) out[aliases[field] ?? field] = message;
  for (const [field, message] of Object.entries(checks)) if (message) out[field] = message;
  for (const field of edited) delete out[field];
  return out;
}

/** A branch or tag name as Git accepts it (the backend's common subset). */
export function gitRef(value: string): string | null {
  const bad =
    value.length === 0 ||
    value.length > 255 ||
    /^[-/.]/.test(value) ||
    /[/.]$/.test(value) ||
    value.endsWith(".lock") ||
    value.includes("..") ||
    value.includes("//") ||
    value.includes("@{") ||
    // control characters, whitespace, or one of ~^:?*[\
    /[\u0000-\u001f\u007f\s~^:?*[\\]/.test(value);
  return bad ? "must be a valid branch or tag name" : null;
}

/** https://; http:// and local folders only where the server allows local development (it also refuses internal hosts). */
export function repoUrl(value: string, allowLocal: boolean): string | null {
  if (value.trim() === "") return "is required";
  if (value.length > 2048) return "must be at most 2048 characters long";
  const localRefused =
    "local repositories are not allowed on this server (BERTH_ALLOW_LOCAL_REPOS); use an https:// URL";
  if (value.startsWith("/")) return allowLocal ? null : localRefused;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be an https:// URL of a Git repository";
  }
  if (url.protocol === "file:") return allowLocal ? null : localRefused;
  if (url.protocol === "http:") {
    // The server decides which hosts are allowed (no internal ones unless it
    // is a local development server); plain http only for local development.
    if (!allowLocal) {
      return "plain http:// is allowed only for local development (BERTH_ALLOW_LOCAL_REPOS); use an https:// URL";
    }
  } else if (url.protocol !== "https:") {
    return `must use https:// (${url.protocol}// is not supported)`;
  }
  if (!url.hostname) return "must name a host";
  if (url.username || url.password) return "must not contain credentials";
  return null;
}
