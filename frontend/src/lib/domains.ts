import type { Domain } from "../api/types";
import { timeAgo } from "./format";

export type Tone = "neutral" | "progress" | "success" | "danger" | "warning" | "muted";

/** What a domain's badge says: waiting for DNS, or serving (and how securely). */
export function domainBadge(d: Domain): { label: string; tone: Tone } {
  if (d.status === "pending_verification") {
    return { label: "waiting for DNS", tone: d.verification.error ? "warning" : "progress" };
  }
  switch (d.certificate.state) {
    case "issued":
      return { label: "serving over HTTPS", tone: "success" };
    case "pending":
      return { label: "getting a certificate", tone: "progress" };
    case "failed":
      return { label: "certificate failing", tone: "danger" };
    default:
      return { label: "serving over HTTP", tone: "success" };
  }
}

/** The certificate in one sentence, for a verified domain. */
export function certificateText(d: Domain, now = Date.now()): string | null {
  const c = d.certificate;
  if (d.status !== "verified" || c.state === "not_applicable") return null;
  if (c.state === "issued" && c.expires_at) {
    const expiry = new Date(c.expires_at).toISOString().slice(0, 10);
    return `Certificate from ${c.issuer ?? "the certificate authority"}, valid until ${expiry}; renewed automatically.`;
  }
  if (c.state === "failed") return c.error ?? "The last attempt to get a certificate failed; berth keeps trying.";
  return `Asking the certificate authority${c.checked_at ? ` (last looked ${timeAgo(c.checked_at, now)})` : ""}.`;
}

/**
 * The same checks as the API's for a hostname a user types, so the form
 * answers before a round trip; `null` when it looks right.
 */
export function hostnameProblem(input: string): string | null {
  const host = input.trim().replace(/\.$/, "").toLowerCase();
  if (!host) return "Enter a domain such as www.example.com.";
  if (/[/:]/.test(host)) return "Enter the domain alone, without https://, a port or a path.";
  if (host.startsWith("*.")) return "Wildcard domains are not supported; add each name.";
  if (!/^[\x21-\x7e]+$/.test(host)) return "Write an internationalized name in its ASCII (xn--) form.";
  const labels = host.split(".");
  if (labels.length < 2) return "Enter a fully qualified name such as www.example.com.";
  if (!labels.every((l) => /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l))) {
    return "Each part between dots may hold only letters, digits and '-', not at its start or end.";
  }
  if (host === "localhost" || host.endsWith(".localhost")) {
    return "Names under localhost cannot be reached from the internet.";
  }
  if (/^\d+$/.test(labels[labels.length - 1])) return "Enter a domain name, not an IP address.";
  return null;
}
