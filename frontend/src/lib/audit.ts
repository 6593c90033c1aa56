import type { AuditEvent } from "../api/types";

const ACTIONS: Record<string, string> = {
  "auth.register": "Created the account",
  "auth.register_existing_email": "Someone tried to sign up with your email address",
  "auth.login": "Signed in",
  "auth.login_failed": "Failed sign-in",
  "auth.logout": "Signed out",
  "auth.github_login": "Signed in with GitHub",
  "auth.github_linked": "Linked GitHub",
  "account.update": "Changed the profile",
  "account.email_change_requested": "Asked to change the email address",
  "account.email_change": "Changed the email address",
  "account.password_change": "Changed the password",
  "account.password_reset": "Reset the password",
  "account.password_reset_requested": "Asked for a password reset",
  "account.session_end": "Signed a session out",
  "account.github_unlink": "Unlinked GitHub",
  "account.delete": "Deleted the account",
  "app.create": "Created an app",
  "app.update": "Changed an app",
  "app.delete": "Deleted an app",
  "app.scale": "Scaled an app",
  "app.webhook_set": "Set up a webhook",
  "app.webhook_deleted": "Removed a webhook",
  "domain.add": "Added a domain",
  "domain.remove": "Removed a domain",
  "deployment.create": "Started a deployment",
};

/** An audit action in words; unknown actions are shown as they are. */
export function actionLabel(action: string): string {
  return ACTIONS[action] ?? action;
}

/** A detail's value in words: lists joined, yes/no, nested details inline. */
function valueText(v: unknown): string {
  if (Array.isArray(v)) return v.map(valueText).join(", ");
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (v && typeof v === "object") return `(${detailsText(v as Record<string, unknown>)})`;
  return String(v);
}

/** The details worth a glance, as `key: value` pairs (never secrets: the API leaves them out). */
export function detailsText(details: Record<string, unknown> | null | undefined): string {
  if (!details) return "";
  return Object.entries(details)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k.replace(/_/g, " ")}: ${valueText(v)}`)
    .join(" · ");
}

export function auditLine(e: AuditEvent): string {
  const details = detailsText(e.details);
  return details ? `${actionLabel(e.action)} (${details})` : actionLabel(e.action);
}
